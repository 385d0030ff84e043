"""A user's own cell space: bad descriptions and tables are one error line and write nothing;
a table's vertex order and isomorphic duplicates are handled; the description travels with
the JSON and the store."""
import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from cache.store import Store
from cli import cli
from pipeline.errors import NarError
from pipeline.spaces import space_of
from tests.fakes import USER_SPACE, fake_user_table

HEADER = "adjacency,ops,node_flops,node_params,val_acc,test_acc\n"
GOOD = '0110000100010000,"input,conv3,conv1,output","0,9,1,0","0,90,10,0",80,81\n'


def _cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _build(tmp_path, table_text, spec=None):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(spec or USER_SPACE))
    table = tmp_path / "table.csv"
    table.write_text(table_text)
    out = tmp_path / "out.json"
    return _cli("build", "--no-progress", "--bench", "user", "--space-file", space, "--source", table,
                "--out", out), out


@pytest.mark.parametrize("table,message", [
    (HEADER + GOOD.replace("conv1", "conv5", 1), "unknown op 'conv5'; the space's ops are input, output, conv3"),
    (HEADER + '0' * 49 + ',"input,conv3,conv3,conv3,conv3,conv3,output",,,80,80\n',
     "7 vertices, more than the space's max_vertices 6"),
    (HEADER + '0110001000010100,"input,conv3,conv1,output",,,80,80\n', "the graph has a cycle"),
    ("adjacency,val_acc\n0100,80\n", "missing column(s) ops"),
    (HEADER + '0110000000010000,"input,conv3,conv1,output",,,80,80\n', "is not on an input -> output path"),
    (HEADER + GOOD + GOOD.replace("conv3,conv1", "conv1,conv3").replace("0110000100010000", "0110000100010000"),
     "row 2 is the same cell as row 1 (isomorphic)"),
    (HEADER + GOOD.replace(",80,81", ",180,81"), "val_acc 180.0 must be a percentage"),
    (HEADER + GOOD.replace('"0,9,1,0"', '"0,9,1"'), "node_flops must give 4 non-negative numbers"),
])
def test_bad_tables_are_one_error_line_and_write_nothing(tmp_path, table, message):
    res, out = _build(tmp_path, table)
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space.yaml", "table.csv"]


@pytest.mark.parametrize("spec,message", [
    ({"max_vertices": 6}, "missing key(s) ops"),
    ({"max_vertices": 40, "ops": ["a"]}, "max_vertices 40 must be an integer 3..16"),
    ({"max_vertices": 5, "ops": ["a", "a"]}, "ops must be a list of distinct op names"),
    ({"max_vertices": 5, "ops": ["input"]}, "op name 'input' is reserved"),
    ({"max_vertices": 5, "ops": ["a"], "colour": 1}, "unknown key(s) colour"),
])
def test_bad_space_descriptions_are_one_error_line(tmp_path, spec, message):
    res, out = _build(tmp_path, HEADER + GOOD, spec)
    assert res.exit_code == 2 and message in res.output and len(res.output.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("raw,message", [
    (b"max_vertices: 6\nops: [a, b\n", "is not valid YAML: while parsing"),
    (b"max_vertices: 6\nops: [\xe9]\n", "is not UTF-8 text (byte 22)"),
])
def test_unreadable_space_descriptions_are_one_error_line(tmp_path, raw, message):
    (tmp_path / "space.yaml").write_bytes(raw)
    (tmp_path / "t.csv").write_text(HEADER + GOOD)
    res = _cli("build", "--bench", "user", "--space-file", tmp_path / "space.yaml", "--source", tmp_path / "t.csv",
               "--out", tmp_path / "o.json")
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1 and "space description" in lines[0] and message in lines[0], lines
    assert not (tmp_path / "o.json").exists()
    from pipeline.spaces.user import load_spec
    with pytest.raises(NarError, match="space description not found: .*; pass --space-file"):
        load_spec(tmp_path / "none.yaml")


def test_build_without_a_description_is_an_error(tmp_path):
    (tmp_path / "t.csv").write_text(HEADER + GOOD)
    res = _cli("build", "--bench", "user", "--source", tmp_path / "t.csv", "--out", tmp_path / "o.json")
    assert res.exit_code == 2 and "needs --space-file" in res.output


def test_vertex_order_is_canonical_and_the_description_travels_with_the_data(tmp_path):
    # the same 4-vertex cell twice: listed in order, and with its vertices shuffled
    shuffled = '0000001110001000,"output,input,conv1,conv3","0,0,1,9","0,0,10,90",,\n'
    res, out = _build(tmp_path, HEADER + shuffled)
    assert res.exit_code == 0, res.output
    rec = json.loads(out.read_text())[0]
    assert rec["ops"] in (["input", "conv3", "conv1", "output"], ["input", "conv1", "conv3", "output"])
    assert rec["val_acc"] is None and rec["node_flops"] == [{"input": 0, "conv1": 1, "conv3": 9, "output": 0}[o]
                                                             for o in rec["ops"]]
    assert np.triu(np.array(rec["adjacency"]), 1).sum() == np.array(rec["adjacency"]).sum() == 4
    (tmp_path / "b").mkdir()
    _, out2 = _build(tmp_path / "b", HEADER + GOOD.replace(",80,81", ",,"))
    assert json.loads(out2.read_text())[0]["key"] == rec["key"]  # isomorphic -> the same key
    assert (tmp_path / "out.json.space.yaml").is_file()
    enc = _cli("encode", "--bench", "user", "--data_path", out, "--out", tmp_path / "s.h5", "--n_jobs", 1)
    assert enc.exit_code == 0, enc.output
    with Store(tmp_path / "s.h5") as s:
        space = space_of(s)
        assert space.spec["ops"] == USER_SPACE["ops"] and s.data("default", "features").shape == (1, 3, 6, 6)
        assert s.data("default", "flops")[0] == 10 and s.data("default", "params")[0] == 100


def test_worked_example_runs_end_to_end(tmp_path, monkeypatch):
    """The README's worked example, with config/user.yml made small."""
    monkeypatch.chdir(tmp_path)
    space, table = fake_user_table(tmp_path / "ex", n=120, seed=3)
    from tests.conftest import REPO
    small = ["--set", "ranker_epochs=3", "--set", "sampler_epochs=5", "--set", "train_size=40", "--set", "val_size=20"]
    steps = [["build", "--no-progress", "--bench", "user", "--space-file", space, "--source", table, "--out", "user.json"],
             ["encode", "--bench", "user", "--data_path", "user.json", "--n_jobs", 1],
             ["train", "--config_file", REPO / "config/user.yml", "--data_path", "user.json", "--save_dir", "run",
              "--seed", 0, *small],
             ["test", "--config_file", REPO / "config/user.yml", "--data_path", "user.json", "--save_dir", "run",
              "--seed", 0, *small],
             ["sample", "--config_file", REPO / "config/user.yml", "--data_path", "user.json", "--save_dir", "run",
              "--checkpoint", "ckp_best.pth", "--seed", 0, *small],
             ["sample", "--data_path", "user.json", "--save_dir", "evo", "--mode", "evolution", "--budget", 40]]
    for args in steps:
        res = _cli(*args)
        assert res.exit_code == 0, (args, res.output)
    assert len(list((tmp_path / "cache").glob("user_*.h5"))) == 1
    rep = json.loads((tmp_path / "run" / "search.json").read_text())
    assert rep["bench"] == "user" and set(rep["strict_protocol"]["pick"]["ops"]) <= {"input", "output", *USER_SPACE["ops"]}
    assert json.loads((tmp_path / "run" / "results.json").read_text())["heldout"]["kendalltau"] > 0.3
