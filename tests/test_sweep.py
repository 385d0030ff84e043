"""`nar-cli sweep`: spec validation, cell keys, skipping, resume after kill -9, failures and
--retry-failed, the report, the loky backend, and agreement with bench/bench_ranking.py
(other spaces and the specs of experiments/: tests/test_sweep_spaces.py)."""
import importlib.util
import json
import os
import socket
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from cache.store import Store
from cli import cli
from nar.sweep.commands import run_sweep
from nar.sweep.grid import expand
from nar.sweep.spec import load_spec
from pipeline.errors import NarError
from tests.conftest import REPO
from tests.fakes import fake_store_201
from tests.sweep_util import CFG201, TINY_NAR, cell_dirs, heldout, kill_sweep_midway, write_spec


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return fake_store_201(tmp_path_factory.mktemp("sweep") / "s201.h5", n=320)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


BAD_SPECS = [
    ({"modles": {"a": "lightgbm"}}, "unknown key 'modles'"),
    ({"models": {"a": "lightgbmx"}}, "unknown model 'lightgbmx'"),
    ({"seeds": []}, "the grid is empty"),
    ({"models": {}}, "the grid is empty"),
    ({"data": {"fake": "/nonexistent/s.h5"}}, "data file not found: /nonexistent/s.h5"),
    ({"models": {"m": {"config": "config/nope.yml"}}}, "config file not found"),
    ({"models": {"m": {"preset": "lightgbm", "set": ["ranker.d_modle=3"]}}}, "unknown config key 'ranker.d_modle'"),
    ({"datasets": ["imagenet16"]}, "has no dataset 'imagenet16'"),
    ({"train_sizes": [[300, 100]]}, "labelled architectures"),
    ({"searches": [{"mode": "bayes", "budget": 10}]}, "mode 'bayes'"),
    ({"models": {"m": {"arch": "lightgbm", "set": ["baseline_target=ranks"]}}}, "'baseline_target'.*use raw or rank"),
    ({}, None),  # a NAR JSON without bench: (written by the test)
    ({"searches": [{"mode": "iterative", "surrogate": "nar", "budget": 50}]}, "surrogate nar needs model"),
]


@pytest.mark.parametrize("keys,message", BAD_SPECS)
def test_bad_spec_is_one_error_before_anything_runs(store, tmp_path, keys, message):
    if message is None:  # a NAR JSON without bench:
        (tmp_path / "t.json").write_text("{}")
        keys, message = {"data": {"j": str(tmp_path / "t.json")}}, "a NAR JSON needs bench: .*registered space"
    spec = write_spec(tmp_path / "s.yaml", store, tmp_path / "out", **keys)
    with pytest.raises(NarError, match=message.replace("(", r"\(")):
        run_sweep(spec)
    assert not (tmp_path / "out").exists()


def test_bad_ray_address_and_cli_error_line(store, tmp_path):
    spec = write_spec(tmp_path / "s.yaml", store, tmp_path / "out")
    with pytest.raises(NarError, match="does not answer"):
        run_sweep(spec, backend="ray", address=f"127.0.0.1:{_free_port()}")
    res = CliRunner().invoke(cli, ["sweep", str(spec), "--backend", "ray", "--address", "nohostport"])
    assert res.exit_code == 2 and res.output.count("\n") == 1 and res.output.startswith("error: --address")
    assert not (tmp_path / "out").exists()


def test_cell_names_hash_resolved_settings(store, tmp_path):
    models = {"lgb_rank": "lightgbm_rank", "mlp": {"arch": "mlp"}}
    a = expand(load_spec(write_spec(tmp_path / "a.yaml", store, tmp_path / "o", models=models)))
    flipped = dict(reversed(list(models.items())))
    b = expand(load_spec(write_spec(tmp_path / "sub_b.yaml", store, tmp_path / "o", models=flipped, seeds=[1, 0, 5])))
    assert {c.name for c in a} < {c.name for c in b}  # same settings -> same names, whatever the order
    assert all(len(c.key) == 12 and c.name.endswith(c.key) for c in a)
    assert len({c.key for c in a}) == len(a) == 4
    changed = expand(load_spec(write_spec(tmp_path / "c.yaml", store, tmp_path / "o", models=models,
                                          set=["target=val_acc"])))
    assert not {c.key for c in changed} & {c.key for c in a}
    sized = expand(load_spec(write_spec(tmp_path / "d.yaml", store, tmp_path / "o", models=models,
                                        train_sizes=[[60, 20], [80, 20]])))
    assert {c.key for c in a} < {c.key for c in sized} and len(sized) == 8
    no_val = expand(load_spec(write_spec(tmp_path / "f.yaml", store, tmp_path / "o", models=models,
                                         train_sizes=[[60, 0]])))  # no validation cells (default configs)
    assert {c.settings["config"]["val_size"] for c in no_val} == {0}
    # a --set that equals the resolved value does not change the settings
    same = expand(load_spec(write_spec(tmp_path / "e.yaml", store, tmp_path / "o", models=models,
                                       set=["target=test_acc"])))
    assert {c.key for c in same} == {c.key for c in a}
    cell = next(c for c in a if c.labels["model"] == "lgb_rank")
    assert cell.settings["config"]["baseline_target"] == "rank" and cell.settings["config"]["arch"] == "lightgbm"
    # settings hold what differs from the code's defaults: a key added later with a default changes no name
    assert "augment" not in cell.settings["config"] and "n_ensemble" not in cell.settings["config"]
    assert cell.settings["config"]["seed"] == cell.seed and cell.settings["config"]["space"] == "nasbench201"


@pytest.fixture(scope="module")
def swept(store, tmp_path_factory):
    """A finished in-process sweep: a baseline, a tiny NAR with its search, a random search."""
    tmp = tmp_path_factory.mktemp("swept")
    spec = write_spec(tmp / "s.yaml", store, tmp / "out",
                      models={"lgb_rank": "lightgbm_rank", "tiny": {"config": CFG201, "set": TINY_NAR}},
                      train_sizes=[[60, 20], [120, 40]], sample={"iterations": 2},
                      searches=[{"mode": "random", "budget": 60}])
    out = run_sweep(spec, jobs=1)
    return spec, out


def test_sweep_writes_run_dirs_then_skips_them(swept):
    spec, first = swept
    out = first["out"]
    assert first["result"].done == first["result"].ran == 10 and not first["result"].failed
    dirs = cell_dirs(out)
    assert len(dirs["done"]) == 10 and not dirs["tmp"] and not dirs["unmarked"]
    nar = next(out / n for n in dirs["done"] if "-tiny-" in n)
    assert {"config.yaml", "train.log", "metrics.csv", "ckp_best.pth", "results.json", "search.json",
            "search.png", "sweep_cell.json", "done.json"} <= {p.name for p in nar.iterdir()}
    info = json.loads((nar / "sweep_cell.json").read_text())
    assert info["commands"][0].startswith("nar-cli train --config_file")
    assert "--set ranker.d_model=16" in info["commands"][0] and info["commands"][2].startswith("nar-cli sample")
    assert info["code"] == str(REPO)
    stamps = {n: (out / n / "done.json").stat().st_mtime_ns for n in dirs["done"]}
    again = run_sweep(spec, jobs=1)
    assert again["result"].ran == 0 and again["result"].done == 10
    assert stamps == {n: (out / n / "done.json").stat().st_mtime_ns for n in cell_dirs(out)["done"]}


def test_report_rebuilds_from_run_dirs(swept, store, tmp_path):
    spec, first = swept
    out = first["out"]
    rep = out / "report"
    for p in rep.iterdir():
        p.unlink()
    res = CliRunner().invoke(cli, ["sweep", "--report", str(spec)])
    assert res.exit_code == 0, res.output
    assert "report of 10 complete cells (0 failed, 0 not run)" in res.output
    rows = (rep / "results.csv").read_text().splitlines()
    taus = [r for r in rows if ",kendalltau," in r]
    assert len(taus) == 8 and rows[0].startswith("cell,kind,data,bench,dataset,model,train_size")
    lgb = [float(r.rsplit(",", 1)[1]) for r in taus if "lgb_rank" in r and ",120,40," in r]
    md = (rep / "summary.md").read_text()
    assert f"| lgb_rank | 2 | {np.mean(lgb):.3f} ± {np.std(lgb):.3f} |" in md
    lgb60 = [float(r.rsplit(",", 1)[1]) for r in taus if "lgb_rank" in r and ",60,20," in r]
    curve = md.split("## Curve, fake cifar10", 1)[1].split("precision@10:", 1)[0]  # the Kendall tau table
    assert "| model | N=60+20 | N=120+40 |" in curve
    assert (f"| lgb_rank | {np.mean(lgb60):.3f} ± {np.std(lgb60):.3f} (n=2) | "
            f"{np.mean(lgb):.3f} ± {np.std(lgb):.3f} (n=2) |") in curve
    assert "## Search, fake cifar10" in md and "| random | 2 |" in md and "NAR search" in md
    for png in ("tau_vs_train_size.png", "search_vs_queries.png"):
        assert (rep / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a spec with one more seed: the report counts it as not run and runs nothing
    bigger = write_spec(tmp_path / "s.yaml", store, out, **{k: v for k, v in
                        __import__("yaml").safe_load(spec.read_text()).items() if k not in ("out", "data", "seeds")},
                        seeds=[0, 1, 2])
    before = cell_dirs(out)
    again = run_sweep(bigger, report_only=True)
    assert again["report"]["counts"] == {"done": 10, "failed": 0, "missing": 5} and cell_dirs(out) == before


def test_failed_cell_recorded_and_retried(store, tmp_path, monkeypatch):
    import nar.harness

    real = nar.harness.run_training

    def flaky(config_file, data_path, save_dir, seed=None, **kw):
        if seed == 1:
            raise RuntimeError("disk on fire\nsecond line")
        return real(config_file, data_path, save_dir, seed=seed, **kw)

    spec = write_spec(tmp_path / "s.yaml", store, tmp_path / "out")
    monkeypatch.setattr(nar.harness, "run_training", flaky)
    res = run_sweep(spec, jobs=1)["result"]
    assert res.done == 1 and len(res.failed) == 1 and res.failed[0][1] == "RuntimeError: disk on fire second line"
    dirs = cell_dirs(tmp_path / "out")
    assert len(dirs["failed"]) == 1 and "-s1-" in dirs["failed"][0]
    fail = json.loads((tmp_path / "out" / dirs["failed"][0] / "failed.json").read_text())
    assert fail["error"] == "RuntimeError: disk on fire second line" and "disk on fire" in fail["traceback"]
    monkeypatch.setattr(nar.harness, "run_training", real)
    res = run_sweep(spec, jobs=1)["result"]  # not retried without the flag
    assert res.ran == 0 and len(res.failed) == 1 and res.failed[0][1].startswith("RuntimeError: disk on fire")
    res = CliRunner().invoke(cli, ["sweep", str(spec), "--jobs", "1", "--retry-failed"])
    assert res.exit_code == 0 and "2 cells: 2 complete (1 run now), 0 failed" in res.output, res.output
    assert len(cell_dirs(tmp_path / "out")["done"]) == 2


def test_ctrl_c_leaves_no_half_cell(store, tmp_path, monkeypatch):
    import nar.harness

    real = nar.harness.run_training

    def interrupted(config_file, data_path, save_dir, seed=None, **kw):
        real(config_file, data_path, save_dir, seed=seed, **kw)  # the run dir is written, then Ctrl-C
        if seed == 1:
            raise KeyboardInterrupt

    spec = write_spec(tmp_path / "s.yaml", store, tmp_path / "out", seeds=[0, 1, 2])
    monkeypatch.setattr(nar.harness, "run_training", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, jobs=1)
    dirs = cell_dirs(tmp_path / "out")
    assert len(dirs["done"]) == 1 and not dirs["tmp"] and not dirs["unmarked"] and not dirs["failed"]
    monkeypatch.setattr(nar.harness, "run_training", real)
    res = run_sweep(spec, jobs=1)["result"]  # the lock was released; the two missing cells run
    assert res.ran == 2 and res.done == 3


def test_resume_after_kill_9(store, tmp_path):
    slow = [*TINY_NAR, "ranker_epochs=25"]
    spec = write_spec(tmp_path / "s.yaml", store, tmp_path / "out", seeds=[0, 1, 2, 3, 4],
                      models={"tiny": {"config": CFG201, "set": slow}})
    after_kill = kill_sweep_midway(spec, tmp_path / "out", ["--jobs", "1"])
    assert 1 <= len(after_kill["done"]) < 5 and not after_kill["unmarked"] and not after_kill["failed"]
    stamps = {n: (tmp_path / "out" / n / "done.json").stat().st_mtime_ns for n in after_kill["done"]}
    res = run_sweep(spec, jobs=1)["result"]
    assert res.done == 5 and res.ran == 5 - len(after_kill["done"]) and not res.failed
    final = cell_dirs(tmp_path / "out")
    assert len(final["done"]) == 5 and not final["tmp"] and not final["unmarked"]
    assert all((tmp_path / "out" / n / "done.json").stat().st_mtime_ns == t for n, t in stamps.items())


def test_loky_workers_match_in_process(swept, store, tmp_path):
    spec = write_spec(tmp_path / "s.yaml", store, tmp_path / "out", models={"lgb_rank": "lightgbm_rank"},
                      train_sizes=[[60, 20], [120, 40]])
    res = run_sweep(spec, jobs=2)["result"]
    assert res.done == 4 and not res.failed
    ref = swept[1]["out"]
    for name in cell_dirs(tmp_path / "out")["done"]:
        assert heldout(tmp_path / "out", name) == heldout(ref, name)
        info = json.loads((tmp_path / "out" / name / "sweep_cell.json").read_text())
        assert info["pid"] != os.getpid() and info["code"] == str(REPO)  # workers import this checkout


def test_workers_started_early_run_the_cells(store, tmp_path, monkeypatch):
    """run_sweep starts the loky pool before checking the grid; the cells then run on those
    very workers (joblib reuses the pool), and none of them on this process."""
    from joblib.externals.loky import get_reusable_executor

    import nar.sweep.runner as runner

    get_reusable_executor(max_workers=1).shutdown(wait=True)  # a fresh pool, as in a new process
    started = []

    class Recorded(runner.WorkerStart):
        def __init__(self, jobs):
            super().__init__(jobs)
            started.append(self)

    monkeypatch.setattr(runner, "WorkerStart", Recorded)
    spec = write_spec(tmp_path / "s.yaml", store, tmp_path / "out", models={"tiny": {"config": CFG201, "set": TINY_NAR}},
                      train_sizes=[[60, 20]], seeds=[0, 1, 2])
    res = run_sweep(spec, jobs=2)["result"]
    assert res.done == 3 and len(started) == 1 and started[0].error is None
    assert len(set(started[0].pids)) == 2 and os.getpid() not in started[0].pids
    pids = {json.loads((tmp_path / "out" / n / "sweep_cell.json").read_text())["pid"]
            for n in cell_dirs(tmp_path / "out")["done"]}
    assert pids <= set(started[0].pids)
    assert runner.start_workers("local", 1) is None and runner.start_workers("ray", 2) is None


def test_lightgbm_rank_agrees_with_bench_ranking(store, tmp_path, monkeypatch):
    """The sweep's lightgbm_rank cell = bench_ranking's lightgbm_rank on the same split."""
    spec = write_spec(tmp_path / "s.yaml", store, tmp_path / "out", seeds=[0],
                      train_sizes=[[100, 30]], set=["strategy=val_acc", "target=test_acc"])
    out = run_sweep(spec, jobs=1)
    cell = out["cells"][0]
    bspec = importlib.util.spec_from_file_location("bench_ranking", REPO / "bench" / "bench_ranking.py")
    bench = importlib.util.module_from_spec(bspec)
    monkeypatch.setitem(sys.modules, "bench_ranking", bench)
    bspec.loader.exec_module(bench)
    setting = bench.Setting("fake", "201", "cifar10", "val_acc", "test_acc", 100, 30, "fake")
    with Store(store) as s:
        ref = bench.run_setting(setting, s, ["lightgbm_rank"], [0], quick=False)["lightgbm_rank"]["metrics"][0]
    got = heldout(out["out"], cell.name)
    assert got["n"] == ref["n"] and got["kendalltau"] == pytest.approx(ref["kendalltau"], abs=1e-12)
    assert got["precision_10"] == ref["precision_10"] and got["n_at_10"] == ref["n_at_10"]
