"""Fault classes of issue 9, through the CLI in-process: every bad input, misuse or damaged
file gives ONE ``error: ...`` line naming the culprit, a non-zero exit, no traceback, nothing
partial and earlier outputs untouched; valid edge cases are accepted."""
import json
import shutil

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from cache.store import Store
from cli import cli
from pipeline.errors import NarError
from tests.conftest import REPO
from tests.fakes import fake_store_201
from tests.test_train import _sets, cli_train

CFG201 = str(REPO / "config" / "config201.yml")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return fake_store_201(tmp_path_factory.mktemp("s") / "s201.h5", n=320)


@pytest.fixture(scope="module")
def run(store, tmp_path_factory):
    return cli_train(store, tmp_path_factory.mktemp("run") / "r", *_sets(["ranker_epochs=2"]))


def fails_cleanly(args, *needles, code=2):
    """Run the CLI; assert one error line holding every needle, the exit code, no traceback."""
    res = CliRunner().invoke(cli, [str(a) for a in args])
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == code, (args, res.output)
    assert "Traceback" not in res.output, res.output
    assert len(lines) >= 1 and lines[-1].startswith("error: "), res.stderr
    assert [ln for ln in lines if ln.startswith("error")] == [lines[-1]], res.stderr
    for n in needles:
        assert n in lines[-1], (n, lines[-1])
    return lines[-1]


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# ------------------------------------------------------------------ outputs that cannot be written
def test_unwritable_outputs_name_the_path(store, run, tmp_path):
    a_dir, a_file = tmp_path / "adir", tmp_path / "afile"
    a_dir.mkdir()
    a_file.write_text("x")
    ckp = run / "ckp_best.pth"
    fails_cleanly(["predict", "--checkpoint", ckp, "--data_path", store, "--out", a_dir], str(a_dir), "directory")
    fails_cleanly(["predict", "--checkpoint", ckp, "--data_path", store, "--out", a_file / "x.csv"],
                  str(a_file), "not a folder")
    fails_cleanly(["train", "--config_file", CFG201, "--data_path", store, "--save_dir", a_file, *_sets()],
                  "--save_dir", str(a_file))
    fails_cleanly(["sample", "--data_path", store, "--save_dir", a_file, "--mode", "random", "--budget", 20],
                  "--save_dir", str(a_file))
    fails_cleanly(["test", "--config_file", CFG201, "--data_path", store, "--save_dir", run,
                   "--save_file_name", ".", *_sets()], "--save_file_name")
    fails_cleanly(["encode", "--bench", "201", "--data_path", a_file, "--out", a_dir, "--skip-sha256"],
                  "--out", "directory")
    res = CliRunner().invoke(cli, ["build", "--bench", "201", "--source", str(a_file), "--out", str(a_dir)])
    assert res.exit_code == 2 and "'--out'" in res.stderr and "is a directory" in res.stderr  # click's check
    assert snapshot(a_dir) == {} and a_file.read_text() == "x"


def test_finished_run_is_not_overwritten_unless_asked(store, run, tmp_path):
    target = tmp_path / "r"
    shutil.copytree(run, target)
    before = snapshot(target)
    fails_cleanly(["train", "--config_file", CFG201, "--data_path", store, "--save_dir", target, *_sets()],
                  "--overwrite")
    assert snapshot(target) == before
    # a retrain that fails (here: a diverging loss) leaves the earlier run whole
    fails_cleanly(["train", "--config_file", CFG201, "--data_path", store, "--save_dir", target, "--overwrite",
                   *_sets(["lr_scheduler.lr_mul=1.0e+30"])], "loss is nan", "no checkpoint")
    assert snapshot(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # no temporary folder left
    ok = CliRunner().invoke(cli, ["train", "--config_file", CFG201, "--data_path", str(store), "--save_dir",
                                  str(target), "--overwrite", *_sets(["ranker_epochs=3"])])
    assert ok.exit_code == 0, ok.output
    rows = (target / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 3 and sorted(p.name for p in tmp_path.iterdir()) == ["r"]


# ------------------------------------------------------------------ config keys and CLI options
@pytest.mark.parametrize("setting, needle", [
    ("lr_scheduler.n_warmup_steps=0", "lr_scheduler.n_warmup_steps"),
    ("lr_scheduler.n_warmup_steps=-4", "lr_scheduler.n_warmup_steps"),
    ("sampler.search_size=0", "sampler.search_size"),
    ("bins=0", "'bins'"),
    ("seed=99999999999", "'seed'"),
    ("seed=-1", "'seed'"),
    ("ranker_epochs=-3", "'ranker_epochs'"),
    ("train_batch_size=-5", "train_batch_size"),
    ("train_size=true", "'train_size'"),
    ("loss_factor=.nan", "'loss_factor'"),
    ("optimizer.beta1=1.5", "optimizer.beta1"),
    ("ranker.dropout=1.0", "ranker.dropout"),
    ("sampler.top_k=-1", "sampler.top_k"),
    ("sampler.noisy_factor=2", "sampler.noisy_factor"),
    ("sampler.last_tier=9", "sampler.last_tier"),
    ("n_ensemble=0", "n_ensemble"),
])
def test_config_values_out_of_meaning_name_the_key(store, tmp_path, setting, needle):
    out = tmp_path / "r"
    line = fails_cleanly(["train", "--config_file", CFG201, "--data_path", store, "--save_dir", out,
                          *_sets([setting])], needle, "--set")
    assert "Traceback" not in line and not out.exists()


def test_config_file_problems(store, tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_bytes(b'space: "nasbench201"\nexp_name: "\xff\xfe"\n')
    fails_cleanly(["train", "--config_file", bad, "--data_path", store, "--save_dir", tmp_path / "r"],
                  str(bad), "UTF-8")
    bad.write_text("space: nasbench201\nlr_scheduler: {n_warmup_steps: 0}\n")
    fails_cleanly(["train", "--config_file", bad, "--data_path", store, "--save_dir", tmp_path / "r"],
                  str(bad), "n_warmup_steps")
    bad.write_text("- a list\n")
    fails_cleanly(["train", "--config_file", bad, "--data_path", store, "--save_dir", tmp_path / "r"],
                  "mapping")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("extra", [["--budget", "-5"], ["--seed", str(2 ** 40)], ["--top_k", "0"],
                                   ["--max_flops", "nan"], ["--iterations", "0"]])
def test_cli_options_are_range_checked(store, tmp_path, extra):
    res = CliRunner().invoke(cli, ["sample", "--data_path", str(store), "--save_dir", str(tmp_path / "s"),
                                   "--mode", "random", "--budget", "20", *extra])
    assert res.exit_code == 2 and "Invalid value" in res.stderr and "Traceback" not in res.output
    assert not (tmp_path / "s").exists()


def test_latency_limit_without_latency_says_so(store, tmp_path):
    fails_cleanly(["sample", "--data_path", store, "--save_dir", tmp_path / "s", "--mode", "random",
                   "--budget", 20, "--max_latency", 3], "--max_latency", "no latency")


# ------------------------------------------------------------------ damaged stores
def _overwrite(path, name, values):
    with h5py.File(path, "r") as f:
        offset, dtype, shape = f[name].id.get_offset(), f[name].dtype, f[name].shape
    m = np.memmap(path, mode="r+", dtype=dtype, offset=offset, shape=shape)
    m[...] = values
    m.flush()
    del m


def test_overwritten_features_are_caught(store, run, tmp_path):
    bad = tmp_path / "bad.h5"
    shutil.copy(store, bad)
    _overwrite(bad, "data/cifar10/features", np.nan)
    fails_cleanly(["verify", bad], str(bad), "data/cifar10/features", "encode")
    fails_cleanly(["train", "--config_file", CFG201, "--data_path", bad, "--save_dir", tmp_path / "r", *_sets()],
                  "damaged", "data/cifar10/features")
    assert not (tmp_path / "r").exists()
    ok = CliRunner().invoke(cli, ["verify", str(store)])
    assert ok.exit_code == 0 and "OK" in ok.stdout


def test_short_key_list_is_refused_on_open(store, run, tmp_path):
    bad = tmp_path / "short.h5"
    shutil.copy(store, bad)
    with h5py.File(bad, "a") as f:
        keys = f["key"][:-7]
        del f["key"]
        f["key"] = keys
    out = tmp_path / "p.csv"
    fails_cleanly(["predict", "--checkpoint", run / "ckp_best.pth", "--data_path", bad, "--out", out],
                  str(bad), "key has 313 rows", "encode")
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["short.h5"]
    with pytest.raises(NarError, match="inconsistent"):
        Store(bad)


def test_damaged_checkpoint_is_one_line(store, run, tmp_path):
    import torch

    blob = torch.load(run / "ckp_best.pth", weights_only=True)
    blob["members"] = [{"w": "not a tensor"}]
    bad = tmp_path / "bad.pth"
    torch.save(blob, bad)
    fails_cleanly(["predict", "--checkpoint", bad, "--data_path", store, "--out", tmp_path / "p.csv"],
                  str(bad), "members")
    del blob["tier_thresholds"]
    torch.save(blob, bad)
    fails_cleanly(["predict", "--checkpoint", bad, "--data_path", store, "--out", tmp_path / "p.csv"],
                  "tier_thresholds")
    assert not (tmp_path / "p.csv").exists()


def test_unexpected_errors_are_one_line(monkeypatch, store, tmp_path):
    import nar.evaluate

    def boom(*a, **k):
        raise ZeroDivisionError("deep inside")
    monkeypatch.setattr(nar.evaluate, "run_predict", boom)
    line = fails_cleanly(["predict", "--checkpoint", "x.pth", "--data_path", store, "--out", tmp_path / "p.csv"],
                         "internal error", "ZeroDivisionError", "-v", code=1)
    assert "deep inside" in line


# ------------------------------------------------------------------ valid edge cases
def test_unicode_paths_work_end_to_end(store, tmp_path):
    folder = tmp_path / "rün ✓ 試"
    data = folder / "dätä.h5"
    folder.mkdir()
    shutil.copy(store, data)
    res = CliRunner().invoke(cli, ["train", "--config_file", CFG201, "--data_path", str(data), "--save_dir",
                                   str(folder / "rün"), *_sets(["ranker_epochs=2"])])
    assert res.exit_code == 0, res.output
    out = folder / "prédictions.csv"
    res = CliRunner().invoke(cli, ["predict", "--checkpoint", str(folder / "rün" / "ckp_best.pth"),
                                   "--data_path", str(data), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert len(out.read_text().splitlines()) == 1 + 320
    assert json.loads(json.dumps(str(out)))  # the path round-trips as text


# ------------------------------------------------------------------ messages name a fix that exists
def test_advice_names_options_the_command_has(run, tmp_path, monkeypatch):

    from tests.test_ingest import nb201_items

    monkeypatch.setenv("NAR_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "d.json"
    src.write_text(json.dumps(dict(nb201_items(5))))
    args = ["predict", "--checkpoint", run / "ckp_best.pth", "--data_path", src, "--out", tmp_path / "p.csv"]
    line = fails_cleanly(args, "--skip-sha256")
    assert "--sha256" in line
    res = CliRunner().invoke(cli, [str(a) for a in args] + ["--skip-sha256"])  # the advice works
    assert res.exit_code == 0, res.output
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 1 + 5


def test_duplicate_architecture_in_a_table_is_named(tmp_path):
    from tests.test_fuzz import CSV_HEAD, CSV_ROWS

    table = tmp_path / "t.csv"
    table.write_text("\n".join([CSV_HEAD, *CSV_ROWS, "7," + CSV_ROWS[1].split(",", 1)[1]]) + "\n")
    fails_cleanly(["build", "--bench", 201, "--source", table, "--out", tmp_path / "o.json"],
                  "records 1 and 4 have the same cell", str(table))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_damaged_store_is_not_a_cache_hit(tmp_path):
    from pipeline.ingest import ingest
    from tests.test_ingest import nb201_items

    src = tmp_path / "d.json"
    src.write_text(json.dumps(dict(nb201_items(5))))
    out = ingest(src, "201", out=tmp_path / "s.h5", skip_sha256=True, n_jobs=1)
    with Store(out) as s:
        good = np.array(s.data("cifar10", "features"))
    _overwrite(out, "data/cifar10/features", 7.0)   # finite garbage: only the checksum sees it
    with pytest.raises(NarError, match="data/cifar10/features does not match its checksum"):
        Store(out).verify()
    assert ingest(src, "201", out=out, skip_sha256=True, n_jobs=1) == out  # rebuilt, not reused
    with Store(out) as s:
        s.verify()
        assert np.array_equal(np.array(s.data("cifar10", "features")), good)
