"""A non-editable install runs from any directory and writes stores into ``./cache`` of the
working directory (or ``--cache-dir`` / ``$NAR_CACHE_DIR``), never into site-packages."""
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.fakes import fake_table_201

_SKIP = shutil.ignore_patterns(".git", ".venv", "cache", "runs", "build", "dist", "*.egg-info",
                               "__pycache__", ".pytest_cache", "out")


def _run(args, cwd, env):
    res = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True)
    assert res.returncode == 0, f"{args}\n{res.stdout}\n{res.stderr}"
    return res


@pytest.mark.slow
def test_installed_package_writes_stores_outside_site_packages(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=_SKIP)
    (src / "cache").mkdir()
    shutil.copy(REPO / "cache" / "__init__.py", src / "cache" / "__init__.py")
    shutil.copy(REPO / "cache" / "store.py", src / "cache" / "store.py")
    venv = tmp_path / "venv"
    # no pip/setuptools of its own: those of this interpreter come in through the .pth below
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], tmp_path,
         os.environ.copy())
    py = venv / "bin" / "python"
    site = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # this interpreter's packages (torch, h5py, ...) without its own checkout: a .pth adds the
    # folders as plain paths, so an editable install's finder there stays inactive
    deps = [p for p in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}]
    (site / "_nar_test_deps.pth").write_text("\n".join(deps) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("NAR_CACHE_DIR", "PYTHONPATH")}
    _run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", src], tmp_path, env)
    work = tmp_path / "work"
    work.mkdir()
    where = _run([py, "-c", "import cache.store, nar; print(cache.store.__file__); print(nar.__file__)"], work, env)
    assert all(Path(p).is_relative_to(site) for p in where.stdout.split())  # the installed copy
    cli = venv / "bin" / "nar-cli"
    fake_table_201(work / "t.csv", n=120, seed=2)
    _run([cli, "build", "--no-progress", "--bench", "nasbench201", "--source", "t.csv", "--out", "t.json"], work, env)
    _run([cli, "encode", "--bench", "201", "--data_path", "t.json", "--n_jobs", "1"], work, env)
    stores = list((work / "cache").glob("201_*.h5"))
    assert len(stores) == 1
    conf = work / "tiny.yml"
    conf.write_text(yaml.safe_dump({
        "space": "nasbench201", "train_size": 40, "val_size": 20, "batch_size": 20, "train_batch_size": 20,
        "val_batch_size": 20, "ranker_epochs": 1, "device": "cpu",
        "ranker": {"d_patch_vec": 16, "d_model": 16, "d_ffn_inner": 32, "d_tier_prj_inner": 32, "n_layers": 1,
                   "n_head": 2, "d_k": 8, "d_v": 8, "d_val_acc_prj_inner": 32}}))
    _run([cli, "--cache-dir", "elsewhere", "train", "--config_file", conf, "--data_path", "t.json",
          "--save_dir", "run", "--seed", 0], work, env)
    assert (work / "run" / "ckp_best.pth").is_file()
    assert len(list((work / "elsewhere").glob("201_*.h5"))) == 1  # --cache-dir: the same source, encoded there
    assert not list(site.rglob("*.h5")) and not list(src.rglob("*.h5"))
