"""`nar-cli sweep --backend ray` against a real local Ray instance (2 CPUs, started once for the
module): same results as in-process, a driver killed with -9 mid-sweep resumes, GPU requests
are checked against the cluster."""
import json
import os

import pytest

from nar.sweep.commands import run_sweep
from pipeline.errors import NarError
from tests.conftest import REPO
from tests.fakes import fake_store_201
from tests.sweep_util import CFG201, TINY_NAR, cell_dirs, heldout, kill_sweep_midway, write_spec

if os.environ.get("CI", "").lower() == "true":
    import ray  # the dev extra installs it: CI fails without it
else:
    ray = pytest.importorskip("ray", reason="pip install '.[ray]' to test the Ray backend")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return fake_store_201(tmp_path_factory.mktemp("sweep_ray") / "s201.h5", n=320)


def test_ray_cells_match_in_process(cluster, store, tmp_path):
    spec = write_spec(tmp_path / "s.yaml", store, tmp_path / "ray", train_sizes=[[60, 20], [120, 40]])
    res = run_sweep(spec, backend="ray")["result"]
    assert res.done == res.ran == 4 and not res.failed
    local = write_spec(tmp_path / "l.yaml", store, tmp_path / "local", train_sizes=[[60, 20], [120, 40]])
    run_sweep(local, jobs=1)
    names = cell_dirs(tmp_path / "ray")["done"]
    assert names == cell_dirs(tmp_path / "local")["done"] and len(names) == 4
    for n in names:
        assert heldout(tmp_path / "ray", n) == heldout(tmp_path / "local", n)
        info = json.loads((tmp_path / "ray" / n / "sweep_cell.json").read_text())
        assert info["pid"] != os.getpid() and info["code"] == str(REPO)  # workers import this checkout
    assert ray.is_initialized()  # the sweep leaves a Ray it did not start running


def test_ray_resume_after_killed_driver(cluster, store, tmp_path):
    slow = [*TINY_NAR, "ranker_epochs=15"]
    spec = write_spec(tmp_path / "s.yaml", store, tmp_path / "out", seeds=[0, 1, 2, 3],
                      models={"tiny": {"config": CFG201, "set": slow}})
    after_kill = kill_sweep_midway(spec, tmp_path / "out", ["--backend", "ray", "--address", cluster])
    assert 1 <= len(after_kill["done"]) < 4 and not after_kill["unmarked"] and not after_kill["failed"]
    res = run_sweep(spec, backend="ray")["result"]
    final = cell_dirs(tmp_path / "out")
    assert res.done == 4 and not res.failed and len(final["done"]) == 4
    assert not final["tmp"] and not final["unmarked"]


def test_gpu_request_checked_against_the_cluster(cluster, store, tmp_path):
    spec = write_spec(tmp_path / "s.yaml", store, tmp_path / "out")
    with pytest.raises(NarError, match="--gpus-per-cell 0.5 but the Ray cluster has 0 GPU"):
        run_sweep(spec, backend="ray", gpus_per_cell=0.5)
    assert not cell_dirs(tmp_path / "out")["done"]
