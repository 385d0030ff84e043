"""Interruptions and concurrency (issue 9, class 4), in real subprocesses: ``encode`` and
``train`` killed at random points by SIGINT, SIGTERM or SIGKILL leave either nothing or a
whole, verified output (earlier outputs untouched), no worker process outlives the command,
the next run removes what a killed run left, and two concurrent encodes of one input end
with one valid store."""
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cache.store import Store
from tests.conftest import REPO
from tests.test_train import TINY

CFG201 = str(REPO / "config" / "config201.yml")
RNG = np.random.default_rng(9)  # kill times: random, but the same on every run


@pytest.fixture(scope="module")
def json201(tmp_path_factory):
    """A valid NB201 JSON of 6000 cells (synthetic accuracies): a few seconds to encode."""
    from pipeline.nar_json import records, write_json
    from pipeline.nb201_space import all_archs
    from pipeline.sources import METRICS_201, Nb201Rows

    n = 6000
    rng = np.random.default_rng(0)
    metrics = {k: (rng.uniform(10, 90, n) if k.endswith("acc") else np.full(n, np.nan)) for k in METRICS_201}
    items, keyed = records(Nb201Rows(np.arange(n), all_archs()[:n], metrics))
    path = tmp_path_factory.mktemp("src") / "syn201.json"
    write_json(path, items, keyed=keyed)
    return path


def _cli(*args, group=False):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, str(REPO / "cli.py"), *map(str, args)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=group)


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _kill_at(proc, sig, delay):
    """Send ``sig`` after ``delay`` s; returns (exit code, stderr, children seen before)."""
    time.sleep(delay)
    kids = _children(proc.pid)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err.decode(), kids


def _temps(folder):
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_encode_killed_leaves_nothing_partial(json201, tmp_path, sig):
    out = tmp_path / "s.h5"
    rc, err, kids = _kill_at(_cli("encode", "--bench", 201, "--data_path", json201, "--out", out,
                                  "--skip-sha256", "--n_jobs", 2), sig, float(RNG.uniform(1.5, 4.5)))
    finished = out.exists()
    if finished:  # renamed into place before the signal took effect (rc 0, or killed while
        Store(out).verify()  # exiting): then it must be whole
    else:
        assert rc != 0
    if rc != 0:
        deadline = time.time() + 10
        while any(_alive(k) for k in kids) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(_alive(k) for k in kids), "a worker outlived the killed encode"
        if finished:  # the interpreter's shutdown restores the default handlers: killed outright
            assert rc in (128 + sig, -sig)
        elif sig != signal.SIGKILL:
            assert rc == 128 + sig and err.strip().splitlines()[-1].startswith("error: interrupted")
            assert _temps(tmp_path) == []
    again = _cli("encode", "--bench", 201, "--data_path", json201, "--out", out, "--skip-sha256", "--n_jobs", 2)
    assert again.wait(timeout=120) == 0
    with Store(out) as s:
        s.verify()
        assert s.n == 6000
    assert _temps(tmp_path) == []  # a killed run's temporary store is removed by the next run


def test_ctrl_c_to_the_whole_process_group_is_one_line(json201, tmp_path):
    """A terminal's Ctrl-C reaches the command and its workers: still one line, nothing left."""
    out = tmp_path / "s.h5"
    proc = _cli("encode", "--bench", 201, "--data_path", json201, "--out", out, "--skip-sha256", "--n_jobs", 2,
                group=True)
    time.sleep(float(RNG.uniform(1.0, 3.0)))
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    err = err.decode()
    if proc.returncode != 0 and out.exists():  # finished, then killed while the interpreter shut down
        Store(out).verify()
        assert proc.returncode in (130, -signal.SIGINT), err
    elif proc.returncode != 0:
        assert proc.returncode == 130 and "Traceback" not in err, err
        assert err.strip().splitlines()[-1].startswith("error: interrupted by SIGINT")
        assert list(tmp_path.iterdir()) == []


def test_concurrent_encodes_of_one_input_end_with_one_valid_store(json201, tmp_path):
    out = tmp_path / "s.h5"
    procs = [_cli("encode", "--bench", 201, "--data_path", json201, "--out", out, "--skip-sha256",
                  "--n_jobs", 1) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err.decode()[-500:]
    with Store(out) as s:
        s.verify()
        assert s.n == 6000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]


@pytest.fixture(scope="module")
def store201(tmp_path_factory):
    from tests.fakes import fake_store_201

    return fake_store_201(tmp_path_factory.mktemp("st") / "s201.h5", n=320)


def _train(store, save_dir, *extra):
    sets = [a for kv in [*TINY, "ranker_epochs=60"] for a in ("--set", kv)]
    return _cli("train", "--config_file", CFG201, "--data_path", store, "--save_dir", save_dir, *sets, *extra)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_train_killed_keeps_the_earlier_run(store201, tmp_path, sig):
    target = tmp_path / "run"
    target.mkdir()
    (target / "ckp_best.pth").write_bytes(b"earlier run")
    (target / "metrics.csv").write_text("earlier\n")
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    rc, err, _ = _kill_at(_train(store201, target, "--overwrite"), sig, float(RNG.uniform(3.0, 7.0)))
    if rc == 0:
        assert {"config.yaml", "train.log", "metrics.csv", "ckp_best.pth", "ckp_last.pth"} <= \
            {p.name for p in target.iterdir()}
        return
    now = {p.name: p.read_bytes() for p in target.iterdir()}
    if now != before:  # the signal came after the finished run was moved in: complete, not mixed
        assert {"config.yaml", "train.log", "metrics.csv", "ckp_best.pth", "ckp_last.pth"} <= set(now)
        assert now["metrics.csv"].decode().strip().splitlines()[-1].split(",")[1] == "60"
        return
    if sig != signal.SIGKILL:
        assert rc == 128 + sig and "interrupted" in err.strip().splitlines()[-1]
        assert _temps(tmp_path) == []
    again = _train(store201, target, "--overwrite", "--set", "ranker_epochs=2")
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err.decode()[-500:]
    assert (target / "ckp_best.pth").read_bytes() != b"earlier run"
    assert _temps(tmp_path) == []  # the killed run's temporary folder is gone


def test_no_stale_cleanup_of_a_live_writer(tmp_path):
    from pipeline.atomic import remove_stale_temps

    target = tmp_path / "x.h5"
    live = tmp_path / f"x.tmp{os.getppid()}.h5"   # our parent: alive
    dead = tmp_path / "x.tmp999999999.h5"           # no such pid
    for p in (live, dead):
        p.write_text("t")
    assert remove_stale_temps(target) == [dead] and live.exists()
    shutil.rmtree(tmp_path)
