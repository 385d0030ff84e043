"""The command-line layer: options declared once (cli_options.py), one meaning of
``--checkpoint``, and a quiet terminal (one progress bar and a summary on stderr, one line per
epoch only in the run's train.log unless ``-v``)."""
import csv
import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from cli import cli
from cli_options import CHECKPOINT_HELP
from nar.checkpoint import resolve_checkpoint
from pipeline.errors import NarError
from tests.conftest import REPO
from tests.fakes import fake_store_201
from tests.test_train import TINY

DEFAULT201 = str(REPO / "config" / "default201.yml")
EPOCHS, MEMBERS = 6, 2


def _option(command: str, name: str) -> click.Option:
    opts = [p for p in cli.commands[command].params if isinstance(p, click.Option) and name in p.opts]
    assert len(opts) == 1, (command, name)
    return opts[0]


@pytest.mark.parametrize("command", ["test", "predict", "sample"])
def test_checkpoint_has_one_meaning(command):
    assert _option(command, "--checkpoint").help == CHECKPOINT_HELP
    assert "--save_dir" in [o for p in cli.commands[command].params for o in p.opts]


def test_shared_options_read_the_same_everywhere():
    for name in ("--data_path", "--sha256", "--skip-sha256"):
        helps = {_option(c, name).help for c in ("train", "test", "predict", "sample")}
        assert len(helps) == 1, (name, helps)
    for name in ("--seed", "--set"):
        assert _option("train", name).help == _option("test", name).help
    for command in ("test", "sample"):
        seed = _option(command, "--seed").type
        assert isinstance(seed, click.IntRange) and (seed.min, seed.max) == (0, 2 ** 32 - 1)
    assert _option("encode", "--cache-dir").help == cli.params[1].help  # the group's and encode's


def test_resolve_checkpoint_prefers_the_run_dir_then_a_path(tmp_path, monkeypatch):
    run, elsewhere = tmp_path / "run", tmp_path / "cwd"
    run.mkdir()
    elsewhere.mkdir()
    (run / "ckp_best.pth").write_bytes(b"run")
    (elsewhere / "ckp_best.pth").write_bytes(b"cwd")
    (elsewhere / "other.pth").write_bytes(b"other")
    (run / "ckp_last.joblib").write_bytes(b"baseline")
    monkeypatch.chdir(elsewhere)
    assert resolve_checkpoint(run, "ckp_best.pth") == run / "ckp_best.pth"  # the release's meaning
    assert resolve_checkpoint(run, "other.pth") == elsewhere.joinpath("other.pth").relative_to(elsewhere)
    assert resolve_checkpoint(None, str(run / "ckp_best.pth")) == run / "ckp_best.pth"
    assert resolve_checkpoint(run, "ckp_last.pth") == run / "ckp_last.joblib"  # a baseline's twin
    with pytest.raises(NarError, match=r"checkpoint not found: .*run/nope.pth or nope.pth; pass --checkpoint"):
        resolve_checkpoint(run, "nope.pth")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return fake_store_201(tmp_path_factory.mktemp("s") / "s201.h5", n=240)


def _train(store, run, *extra):
    sets = [*TINY, f"ranker_epochs={EPOCHS}", "swa_epochs=2", f"n_ensemble={MEMBERS}", "val_size=20"]
    args = [sys.executable, str(REPO / "cli.py"), *extra, "train", "--config_file", DEFAULT201,
            "--data_path", str(store), "--save_dir", str(run), "--seed", "0",
            *[a for kv in sets for a in ("--set", kv)]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    res = subprocess.run(args, cwd=REPO, env=env, capture_output=True, timeout=300)
    stderr = res.stderr.decode()  # bytes: text mode would turn a bar's \r redraws into lines
    assert res.returncode == 0, stderr
    return stderr


def _epoch_lines(text: str) -> list[str]:
    return [ln for ln in text.split("\n") if " nar.train: epoch " in ln]


def test_train_terminal_is_short_and_train_log_has_every_epoch(store, tmp_path):
    run = tmp_path / "run"
    stderr = _train(store, run)
    lines = [ln for ln in stderr.split("\n") if ln.strip()]  # a bar's redraws share one line (\r)
    assert _epoch_lines(stderr) == [] and "ensemble member" not in stderr
    assert len(lines) <= 6, stderr
    bars = [ln for ln in lines if f"/{EPOCHS * MEMBERS} [" in ln]
    assert len(bars) == 1 and f"train {MEMBERS} members" in bars[0]  # one bar for the whole ensemble
    summary = [ln for ln in lines if "trained NAR in" in ln]
    assert len(summary) == 1 and f"{MEMBERS} members x {EPOCHS} epochs" in summary[0]
    log = (run / "train.log").read_text()
    assert len(_epoch_lines(log)) == EPOCHS * MEMBERS
    assert [ln.split(" epoch ")[1].split()[0] for ln in _epoch_lines(log)] == [str(e + 1) for e in range(EPOCHS)] * MEMBERS
    assert "trained NAR in" in log and log.count("ensemble member") == MEMBERS
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert len(rows) == EPOCHS * MEMBERS


def test_verbose_terminal_shows_every_epoch(store, tmp_path):
    stderr = _train(store, tmp_path / "run", "-v")
    assert len(_epoch_lines(stderr)) == EPOCHS * MEMBERS


def test_predict_finds_the_checkpoint_in_save_dir(store, tmp_path):
    run = tmp_path / "run"
    sets = [a for kv in [*TINY, "ranker_epochs=2"] for a in ("--set", kv)]
    res = CliRunner().invoke(cli, ["train", "--config_file", str(REPO / "config" / "config201.yml"),
                                   "--data_path", str(store), "--save_dir", str(run), *sets])
    assert res.exit_code == 0, res.output
    out = tmp_path / "scores.csv"
    res = CliRunner().invoke(cli, ["predict", "--save_dir", str(run), "--checkpoint", "ckp_last.pth",
                                   "--data_path", str(store), "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 240 and sorted(int(r["rank"]) for r in rows) == list(range(1, 241))


def test_sample_terminal_shows_one_bar_and_a_summary(store, tmp_path):
    args = [sys.executable, str(REPO / "cli.py"), "sample", "--data_path", str(store), "--mode", "iterative",
            "--surrogate", "lightgbm", "--budget", "40", "--seed", "0", "--save_dir"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    quiet = subprocess.run(args + [str(tmp_path / "a")], cwd=REPO, env=env, capture_output=True, timeout=300)
    loud = subprocess.run([args[0], args[1], "-v", *args[2:], str(tmp_path / "b")], cwd=REPO, env=env,
                          capture_output=True, timeout=300)
    assert quiet.returncode == loud.returncode == 0, quiet.stderr.decode() + loud.stderr.decode()
    stderr = quiet.stderr.decode()
    bars = [ln for ln in stderr.split("\n") if "iterative search:" in ln and "/40 [" in ln]
    assert len(bars) == 1 and "iterative round" not in stderr  # per-round lines: DETAIL level
    assert "iterative search: 2 rounds, 40 queries" in stderr
    assert loud.stderr.decode().count("iterative round") == 2
    assert quiet.stdout.decode().splitlines()[-1].startswith("wrote ")
