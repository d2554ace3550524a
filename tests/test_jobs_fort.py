"""Fort & Jastrzebski jobs end to end at CPU scale, and their bad inputs."""
import csv
import json

from conftest import run_module

TINY = ("debug=fast", "trainer.progress_bar=false")


def _result(out, job):
    d = sorted((out / "jobs").glob(f"{job}_*"))[-1]
    return json.loads((d / "results.json").read_text()), d


def test_tunnel_width_grows_with_lr_in_the_lower_part_of_the_cpu_sweep(lsx_dirs):
    """The paper's trend, on the CPU preset (digits): width(3e-4) > width(1e-4). README states the full sweep."""
    cache, out = lsx_dirs
    res = run_module("lsx.analyze", "-m", "experiment=fort_fig5", "scale=cpu", "optimizer.lr=0.0001,0.0003",
                     "trainer.progress_bar=false", "analysis.num_directions=6")
    assert res.returncode == 0, res.stderr[-3000:]
    sweep = next((out / "multirun").glob("*/*"))
    agg = run_module("lsx.aggregate", str(sweep), "--y", "metrics.width_mean")
    assert agg.returncode == 0, agg.stderr
    rows = {float(r["optimizer.lr"]): float(r["metrics.width_mean"]) for r in csv.DictReader(open(sweep / "summary.csv"))}
    assert rows[0.0003] > rows[0.0001]
    assert (sweep / "width_mean_vs_optimizer_lr.png").exists()


def test_radial_tunnels_and_swa_jobs_run(lsx_dirs):
    cache, out = lsx_dirs
    r1 = run_module("lsx.analyze", "analysis=radial_tunnels", *TINY, "training.epochs=2", "training.checkpoint_epochs=[0,1]",
                    "analysis.epochs=[1,2]", "analysis.num=5")
    assert r1.returncode == 0, r1.stderr[-3000:]
    res, d = _result(out, "radial_tunnels")
    assert (d / "radial_tunnels.png").exists() and res["metrics"]["epoch2_radius"] > 0
    r2 = run_module("lsx.analyze", "analysis=swa_ensemble", "scheduler=cyclic", "scheduler.cycle_epochs=1", *TINY,
                    "training.epochs=2", "analysis.max_lrs=[0.001,0.01]", "analysis.num_snapshots=2")
    assert r2.returncode == 0, r2.stderr[-3000:]
    res, d = _result(out, "swa_ensemble")
    assert "lr0.01_advantage_acc" in res["metrics"] and (d / "swa_vs_ensemble.png").exists()


def test_fort_bad_inputs_are_clear_errors(lsx_dirs):
    cache, out = lsx_dirs
    r = run_module("lsx.analyze", "analysis=tunnel_width", *TINY, "analysis.threshold.value=0.01")
    assert r.returncode == 2 and "not above the loss at the optimum" in r.stderr
    r = run_module("lsx.analyze", "analysis=swa_ensemble", "scheduler=cyclic", "scheduler.cycle_epochs=1", *TINY, "analysis.num_snapshots=0")
    assert r.returncode == 2 and ">= 1" in r.stderr
    r = run_module("lsx.analyze", "analysis=swa_ensemble", "scheduler=cyclic", "scheduler.cycle_epochs=5", *TINY)
    assert r.returncode == 2 and "longer than training" in r.stderr
    one = run_module("lsx.train", "-m", "seed=0", *TINY)
    assert one.returncode == 0
    agg = run_module("lsx.aggregate", str(next((out / "multirun").glob("*/*"))))
    assert agg.returncode == 2 and "single finished job" in agg.stderr
