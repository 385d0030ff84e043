"""`nar-cli sweep` beyond NB101/NB201: presets and the grid ask the space (NAS-Bench-Graph on a
tiny fake table: `bench: graph`, its one dataset, no network_type), a graph sweep's cells equal
the commands of experiments/graph_results.sh, and the specs of experiments/ expand."""
import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from cli import cli
from nar.config import CONFIG_DIR
from nar.presets import preset_available, preset_config
from nar.sweep.commands import run_sweep
from nar.sweep.grid import expand, takes_network_type
from nar.sweep.spec import load_spec
from pipeline.errors import NarError
from pipeline.ingest import ingest
from tests.conftest import REPO
from tests.fakes import fake_graph_bench, fake_store_101, fake_store_201
from tests.sweep_util import cell_dirs, heldout, write_spec

# a tiny gated graph ranker on top of config/graph.yml (what nar_default is on NAS-Bench-Graph)
TINY_GRAPH = ["ranker.d_model=16", "ranker.n_layers=1", "ranker.d_tier_prj_inner=16",
              "ranker.d_val_acc_prj_inner=16", "ranker_epochs=3", "swa_epochs=1", "n_ensemble=1",
              "batches_per_epoch=0", "batch_size=16", "train_batch_size=16", "sampler.search_size=16",
              "sampler.sample_size=16", "sampler.strict_lookups=5"]


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    """(NAR JSON, store) of a fake 'cora' table of 200 NAS-Bench-Graph architectures."""
    d = tmp_path_factory.mktemp("graph")
    src = fake_graph_bench(d / "cora.bench", 200, seed=2)
    res = CliRunner().invoke(cli, ["build", "--no-progress", "--bench", "graph", "--source", str(src),
                                   "--out", str(d / "cora.json")])
    assert res.exit_code == 0, res.output
    return d / "cora.json", ingest(d / "cora.json", "graph", out=d / "cora.h5", n_jobs=1)


@pytest.fixture(scope="module")
def store201(tmp_path_factory):
    return fake_store_201(tmp_path_factory.mktemp("s201") / "s201.h5", n=200)


def test_presets_resolve_per_space():
    graph_yml = REPO / "config" / "graph.yml"
    for bench in ("graph", "nasbenchgraph"):
        assert preset_config("nar_default", bench) == (graph_yml, [])
        assert preset_config("lightgbm_rank", bench) == (graph_yml, ["arch=lightgbm", "baseline_target=rank"])
    assert preset_config("mlp", "nbg") == (graph_yml, ["arch=mlp", "baseline_target=raw"])
    # NB101 / NB201 keep their files
    assert preset_config("nar_default", "201") == (CONFIG_DIR / "default201.yml", [])
    assert preset_config("nar_cpu", "nasbench101") == (CONFIG_DIR / "cpu101.yml", [])
    assert preset_config("lightgbm", "201")[0] == CONFIG_DIR / "config201.yml"
    assert preset_available("nar_improved", "201") and not preset_available("nar_cpu", "graph")
    with pytest.raises(NarError, match="'nar_cpu' has no config for NAS-Bench-Graph; use one of .*nar_default"):
        preset_config("nar_cpu", "graph")
    with pytest.raises(NarError, match="unknown bench 'nb999'"):
        preset_config("nar_default", "nb999")
    with pytest.raises(NarError, match="unknown model preset 'nar_x'"):
        preset_config("nar_x", "graph")
    assert takes_network_type("201") and not takes_network_type("101") and not takes_network_type("graph")


def test_grid_asks_the_space(graph, store201, tmp_path, monkeypatch):
    """A graph JSON (bench: graph) beside an NB201 store: the graph cells use config/graph.yml,
    its one dataset and no network_type; a preset without a graph config skips the graph data."""
    monkeypatch.setenv("NAR_CACHE_DIR", str(tmp_path / "cache"))
    json_path, _ = graph
    spec = write_spec(tmp_path / "s.yaml", store201, tmp_path / "out",
                      data={"cora": {"path": str(json_path), "bench": "graph"}, "fake": str(store201)},
                      datasets={"cifar10": [], "cifar100": ["strategy=test_acc"]},
                      models={"nar": "nar_default", "cpu": "nar_cpu", "lgb": "lightgbm_rank"},
                      train_sizes=[[60, 0]], seeds=[0], searches=[{"mode": "random", "budget": 70}])
    cells = expand(load_spec(spec))
    g = [c for c in cells if c.labels["data"] == "cora"]
    n201 = [c for c in cells if c.labels["data"] == "fake"]
    assert len(g) == 2 + 1 and len(n201) == 2 * (3 + 1)  # nar_cpu has no graph config
    assert {c.labels["bench"] for c in g} == {"graph"} and {c.labels["dataset"] for c in g} == {"default"}
    assert all(c.config_file == str(REPO / "config" / "graph.yml") for c in g)
    assert not any(o.startswith("network_type=") for c in g for o in c.overrides)
    assert not any("strategy=test_acc" in c.overrides for c in g)  # the NB201 dataset's overrides stay there
    nar = next(c for c in g if c.labels["model"] == "nar")
    assert nar.settings["config"]["space"] == "graph" and nar.settings["config"]["ranker"]["encoder"] == "gated_graph"
    assert (tmp_path / "cache").is_dir()  # the JSON was encoded into the cache
    assert {c.labels["dataset"] for c in n201} == {"cifar10", "cifar100"}
    assert all(f"network_type={c.labels['dataset']}" in c.overrides for c in n201)
    only_cpu = write_spec(tmp_path / "c.yaml", store201, tmp_path / "out", data={"cora": str(graph[1])},
                          models={"cpu": "nar_cpu"})
    with pytest.raises(NarError, match=r"model cpu has no config for the benches of the data \(NAS-Bench-Graph\)"):
        run_sweep(only_cpu)
    bad = write_spec(tmp_path / "b.yaml", store201, tmp_path / "out",
                     data={"j": {"path": str(json_path), "bench": "nb999"}})
    with pytest.raises(NarError, match="bench 'nb999'; use a registered space: .*graph"):
        run_sweep(bad)
    wrong = write_spec(tmp_path / "w.yaml", store201, tmp_path / "out", data={"j": {"path": str(graph[1]),
                                                                                      "bench": "201"}})
    with pytest.raises(NarError, match="holds NAS-Bench-Graph cells but the spec says bench 201"):
        run_sweep(wrong)
    assert not (tmp_path / "out").exists()


def test_graph_sweep_equals_the_commands_of_graph_results_sh(graph, tmp_path):
    """A tiny graph sweep runs and reports; its LightGBM(rank) cell and random search equal
    `nar-cli train/test --config_file config/graph.yml --set arch=lightgbm --set
    baseline_target=rank --set train_size=N` and `nar-cli sample --mode random --budget Q`
    (no config file), the commands of experiments/graph_results.sh."""
    from nar.evaluate import run_test
    from nar.harness import run_training
    from nar.search_commands import run_sample

    _, store = graph
    spec = write_spec(tmp_path / "s.yaml", store, tmp_path / "out", data={"cora": str(store)},
                      models={"nar": {"preset": "nar_default", "set": TINY_GRAPH}, "lgb": "lightgbm_rank"},
                      train_sizes=[[60, 0]], seeds=[0], sample={"iterations": 2},
                      searches=[{"name": "random-65", "mode": "random", "budget": 65}])
    out = run_sweep(spec, jobs=1)
    assert out["result"].done == 3 and not out["result"].failed
    names = {c.labels["model"]: c.name for c in out["cells"]}
    assert len(cell_dirs(tmp_path / "out")["done"]) == 3
    sample = json.loads((tmp_path / "out" / names["nar"] / "search.json").read_text())
    assert sample["bench"] == "graph" and sample["strict_protocol"]["queries"] == 60 + 5

    ref = tmp_path / "ref"
    over = ["arch=lightgbm", "baseline_target=rank", "train_size=60"]
    run_training(str(REPO / "config" / "graph.yml"), str(store), ref / "lgb", seed=0, overrides=over)
    run_test(str(REPO / "config" / "graph.yml"), str(store), ref / "lgb", "ckp_best.pth", seed=0, overrides=over)
    got, want = heldout(tmp_path / "out", names["lgb"]), heldout(ref, "lgb")
    assert got["n"] == want["n"] == 140 and got["kendalltau"] == want["kendalltau"]
    run_sample(str(store), ref / "random", seed=0, mode="random", budget=65)
    rand = json.loads((tmp_path / "out" / names["random-65"] / "search.json").read_text())["strict_protocol"]
    want = json.loads((ref / "random" / "search.json").read_text())["strict_protocol"]
    assert rand["pick"] == want["pick"] and rand["queries"] == want["queries"] == 65

    md = (tmp_path / "out" / "report" / "summary.md").read_text()
    assert "## cora default: train 60, val 0" in md and f"| lgb | 1 | {got['kendalltau']:.3f} |" in md
    ref_pick = sample["random_search_reference"][f"mean_pick_{sample['target']}"]
    assert f"| {ref_pick:.2f} ({sample['random_search_reference']['median_pick_rank']:.1f}) |" in md
    at = rand["at_queries"]["64"]  # the last milestone within the budget of 65
    assert (f"| random-65 | 1 | " in md and f"{at['pick_' + sample['target']]:.2f} [{int(at['pick_rank'] == 1)}/"
            f"{int(at['best_queried_rank'] == 1)}] r{at['pick_rank']} |" in md)


def test_train_sizes_with_their_own_seeds(store201, tmp_path):
    spec = write_spec(tmp_path / "s.yaml", store201, tmp_path / "out", seeds=[0, 1, 2], set=["val_size=10"],
                      train_sizes=[[60, 20], {"train": 80, "val": 0, "seeds": [5]}, {"train": 40}])
    cells = expand(load_spec(spec))
    got = sorted((c.labels["train_size"], c.labels["val_size"], c.seed) for c in cells)
    assert got == [(40, 10, 0), (40, 10, 1), (40, 10, 2), (60, 20, 0), (60, 20, 1), (60, 20, 2), (80, 0, 5)]
    plain = expand(load_spec(write_spec(tmp_path / "p.yaml", store201, tmp_path / "out", seeds=[5],
                                        set=["val_size=10"], train_sizes=[[80, 0]])))
    assert plain[0].name in {c.name for c in cells}  # a size's own seeds change no cell name
    for sizes, message in (([{"val": 3}], "missing key 'train'"), ([{"train": 80, "seeds": [1, 1]}], "repeated seed"),
                           ([{"train": 80, "seed": [1]}], "unknown key 'seed'")):
        with pytest.raises(NarError, match=message):
            load_spec(write_spec(tmp_path / "b.yaml", store201, tmp_path / "out", train_sizes=sizes))


# spec -> cells; the graph and curve specs name data that CI does not have (fake stores stand in)
EXPERIMENTS = {"ranking_paper201": 1, "ranking_improved201": 20, "ranking_improved201_single": 5,
               "ranking_improved101": 6, "ranking_baselines": 48, "search_query_efficient": 80, "search_nb101": 40,
               "ranking_curve": 2 * 3 * (3 * 5 + 3 * 3) + 3 * (3 * 5 + 2 * 3),
               "graph_results": 3 * (3 * 2 + 2) * 5}


@pytest.mark.parametrize("name,n_cells", sorted(EXPERIMENTS.items()))
def test_experiment_specs_expand(name, n_cells, graph, tmp_path, monkeypatch):
    """Every spec of experiments/ is valid against today's configs (data swapped for fake stores
    of the same bench; the labelled-count check is lifted for the real sizes) and names the
    command that regenerates it."""
    import nar.sweep.grid as grid

    raw = yaml.safe_load((REPO / "experiments" / f"{name}.yaml").read_text())
    fakes = {"201": lambda: fake_store_201(tmp_path / "s201.h5", n=120),
             "101": lambda: fake_store_101(tmp_path / "s101.h5", n=60), "graph": lambda: graph[1]}
    made = {}
    for d in raw["data"].values():
        b = str(d.pop("bench"))
        made[b] = made.get(b) or str(fakes[b]())
        d["path"] = made[b]
    raw["out"] = str(tmp_path / "out")
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setattr(grid, "_labelled", lambda *a: 10 ** 6)
    monkeypatch.chdir(REPO)  # config paths in the specs are relative to the repository
    cells = expand(load_spec(tmp_path / f"{name}.yaml"))
    assert len(cells) == n_cells
    assert len({c.name for c in cells}) == n_cells and np.all([len(c.key) == 12 for c in cells])
    text = (REPO / "experiments" / f"{name}.yaml").read_text()
    assert f"nar-cli sweep experiments/{name}.yaml" in text.split("# Regenerate:", 1)[1].splitlines()[0]
