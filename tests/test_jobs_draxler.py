"""Draxler et al.: the autoneb job end to end on two tiny minima, resume, and its bad inputs."""

import json
import math

import pytest
from conftest import run_module

TINY = (
    "analysis=autoneb",
    "debug=fast",
    "trainer.progress_bar=false",
    "optima.seeds=[0,1]",
    "analysis.cycles=[{repeat: 2, steps: 3, lr: 0.01}]",
    "analysis.dense_between=2",
    "analysis.batch_size=32",
    "data.landscape_train=64",
    "data.landscape_test=64",
)


@pytest.mark.slow  # end to end, tens of seconds: make test-all
def test_autoneb_job_writes_table_and_path_plots(lsx_dirs):
    cache, out = lsx_dirs
    r = run_module("lsx.analyze", *TINY, "analysis.plane_num=4")
    assert r.returncode == 0, r.stderr[-3000:]
    d = sorted((out / "jobs").glob("autoneb_*"))[-1]
    res = json.loads((d / "results.json").read_text())
    m = res["metrics"]
    assert m["known_pairs"] == 1 and m["complete"]
    assert m["train_loss_saddle"] >= m["train_loss_minima"] - 1e-9
    table = json.loads((d / "table1.json").read_text())
    assert table["pairs"][0]["pair"] == [0, 1] and table["pairs"][0]["in_mst"]
    # Table 1 over the MST's pairs, on the whole test split (digits: 20% of 1797 = 359 test examples, not the 64 of the subset)
    assert m["table_pairs"] == 1 and m["table_data"] == "full" and m["test_examples"] == 359
    assert m["test_error_per_example"] == 1 / 359
    assert m["mst_pairs"][0]["pair"] == [0, 1] and m["mst_pairs"][0]["saddle_minimum_factor"] > 0
    # what the Table 1 claims need per pair; the saddle value of each metric is its maximum on the path (Table 1 caption)
    p0, row = m["mst_pairs"][0], table["pairs"][0]
    for k in ("test_loss_minima", "test_loss_saddle", "linear_max_train_loss", "test_error_minima", "test_error_saddle"):
        assert k in p0, k
    assert row["test_loss_saddle"] >= max(row["test_loss_at_train_saddle"], row["test_loss_minima"]) - 1e-9
    assert m["chance_loss"] == pytest.approx(math.log(10))  # digits: 10 classes (Table 1 note 1)
    for name in ("pair_0_1.png", "pair_0_1_plane_path.png", "pairs/pair_0000_0001.npz"):
        assert (d / name).exists(), name
    # a second launch of the same job is a no-op; deleting DONE resumes from the saved pair files
    (d / "DONE").unlink()
    again = run_module("lsx.analyze", *TINY, "analysis.plane_num=4")
    assert again.returncode == 0 and json.loads((d / "results.json").read_text())["metrics"]["known_pairs"] == 1


@pytest.mark.slow  # end to end, tens of seconds: make test-all
def test_autoneb_bad_inputs(lsx_dirs):
    r = run_module("lsx.analyze", *TINY[:-5], "optima.seeds=[0]")
    assert r.returncode == 2 and "at least two minima" in r.stderr
    r = run_module("lsx.analyze", *[t for t in TINY if not t.startswith("analysis.cycles")], "analysis.cycles=[]")
    assert r.returncode == 2 and "cycle" in r.stderr.lower()
