"""xu_resnet32 (Xu et al.'s ResNet-32 setting): the preset composes at cpu scale, its claims name real
statistics and the metric keys the curve_taxonomy job writes, and they give the right verdict on
hand-made job records (no training)."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lsx.claims.statistics")
from lsx.claims.records import JobRecord  # noqa: E402
from lsx.claims.verdicts import NOT_REPRODUCED, REPRODUCED, evaluate_claim  # noqa: E402

# the paper's type per direction kind (Xu et al. Sec. 2), independent of what the preset declares
PAPER_TYPES = {
    "gaussian": "v-basin",
    "pe": "v-basin",
    "neg_gradient": "v-side",
    "later_checkpoint": "v-side",
    "independent": "w-basin",
    "ne": "w-peak",
}
WRONG_TYPE = {"v-basin": "v-side", "v-side": "v-basin", "w-basin": "v-basin", "w-peak": "v-side"}


@pytest.fixture(scope="module")
def plan():
    from lsx.cli.reproduce import make_plan

    return make_plan("xu_resnet32")


@pytest.fixture(scope="module")
def job_config(plan):
    from lsx.cli.reproduce import compose_point

    return compose_point(plan.points[0])


EXTRA_CLAIMS = {"gaussian_few_stationary_points", "algorithm2_vvv_basin_possible"}


def test_preset_composes_at_cpu_scale_and_its_claims_parse(plan, job_config):
    from lsx.claims.inference import MIN_UNITS

    assert plan.scale == "cpu" and min(map(len, plan.seeds.values())) >= MIN_UNITS
    assert all("analysis=curve_taxonomy" in p for p in plan.points if "analysis=mining" not in p)
    assert {c["id"] for c in plan.claims} == {f"{k}_{t.replace('-', '_')}" for k, t in PAPER_TYPES.items()} | EXTRA_CLAIMS
    assert {c["statistic"] for c in plan.claims} == {"xu_curve_kind", "xu_per_unit"}
    assert plan.figures == [{"figure": "xu_taxonomy_curves", "args": {"log_y": True}}]
    assert plan.budget_min and all(c.get("note") for c in plan.claims)
    c = job_config
    assert (c["model"]["name"], c["model"]["width"], c["data"]["name"]) == ("resnet32", 0.25, "digits")
    a, t = c["analysis"], c["training"]
    assert a["job"] == "curve_taxonomy" and set(a["directions"]) == set(PAPER_TYPES)
    # the studied epoch is saved, a later checkpoint exists, and the LR has not dropped yet (the paper's epoch 100 of 200)
    assert a["epoch"] in t["checkpoint_epochs"] and max(t["checkpoint_epochs"]) > a["epoch"]
    # the paper's default UpBN (Sec. 2.1), and the v-side kinds at its Fig. 4 epoch (E = 10 of 200 → 2 of 40)
    assert a["bn"] == "upbn" and a["side_epoch"] == 2 and a["side_epoch"] in t["checkpoint_epochs"]
    assert a["independent_seed"] is None and a["gradient_scale"] == "auto"
    assert c["scheduler"]["name"] == "step" and a["epoch"] <= min(c["scheduler"]["milestones"])
    # λ = 0 and λ = 1 (the independent model) are grid points of the [−1, 2] window
    lams = np.linspace(-1.0, 2.0, int(a["num"]))
    assert np.isclose(lams, 0.0).any() and np.isclose(lams, 1.0).any()


def _records(job_config, seeds, kind_types, vvv: str = "vvv-basin") -> list[JobRecord]:
    """Per seed, a curve_taxonomy record with the metric keys the job writes (types_<kind>: one type per curve) and a
    mining record whose first (α, γ) setting mined ``vvv``."""
    a = job_config["analysis"]
    counts = {"gaussian": int(a["gaussian_curves"]), "pe": int(a["eigen_curves"]), "ne": int(a["eigen_curves"])}
    jobs = []
    for s in seeds:
        metrics = {f"types_{k}": [kind_types[k]] * counts.get(k, 1) for k in a["directions"]}
        metrics |= {f"alt_types_{k}": [[kind_types[k]]] * counts.get(k, 1) for k in a["directions"]}
        metrics["stationary_counts_gaussian"] = [1] * counts["gaussian"] if kind_types["gaussian"] == "v-basin" else [3, 5, 3]
        training = [
            {"seed": s, "run_dir": f"run{s}", "train_loss": 0.005},
            {"seed": s + 1000, "run_dir": f"run{s + 1000}", "train_loss": 0.005},
        ]
        jobs.append(
            JobRecord(
                config={**job_config, "seed": s},
                metrics=metrics,
                seed=s,
                job="curve_taxonomy",
                job_dir=Path(f"/tmp/xu_resnet32_{s}"),
                training=training,
            )
        )
        types = [vvv] + ["w-basin"] * 5
        jobs.append(
            JobRecord(
                config={"seed": s},
                metrics={"vvv_types": types, "vvv_alt_types": [[t] for t in types]},
                seed=s,
                job="mining",
                job_dir=Path(f"/tmp/xu_resnet32_mining_{s}"),
                training=training,
            )
        )
    return jobs


@pytest.mark.parametrize("paper_types, expected", [(True, REPRODUCED), (False, NOT_REPRODUCED)])
def test_claims_give_the_right_verdict_on_synthetic_records(plan, job_config, paper_types, expected):
    kind_types = {k: t if paper_types else WRONG_TYPE[t] for k, t in PAPER_TYPES.items()}
    # the paper's Fig. 10: 1 of the 6 RN32 settings mined a vvv-basin
    jobs = _records(job_config, plan.seeds["discovery"], kind_types, "vvv-basin" if paper_types else "w-basin")
    for claim in plan.claims:
        res = evaluate_claim(claim, jobs, train_loss_ratio=plan.train_loss_ratio)
        assert res.verdict == expected, (claim["id"], res.reason)
        assert res.estimate.n == len(plan.seeds["discovery"]) and not res.train_loss_flag


def test_a_broken_claim_is_refused_or_inconclusive(plan, job_config):
    from lsx.claims.verdicts import INCONCLUSIVE, check_claims

    claim = dict(plan.claims[0])
    with pytest.raises(ValueError, match="unknown statistic"):
        check_claims("xu_resnet32", [dict(claim, statistic="xu_curve_kinds")])
    jobs = _records(job_config, plan.seeds["discovery"], PAPER_TYPES)
    res = evaluate_claim(dict(claim, args=dict(claim["args"], y="metrics.types_gausian")), jobs)
    assert res.verdict == INCONCLUSIVE and "types_gausian" in res.reason


def test_log_scale_taxonomy_figure_draws_curves_that_blow_up(tmp_path, plan, monkeypatch):
    import lsx.plots.common
    from lsx.claims.figures import draw_figure

    scales = []
    save = lsx.plots.common.save_figure

    def spy(fig, path, *a, **kw):
        scales.extend(ax.get_yscale() for ax in fig.axes)
        return save(fig, path, *a, **kw)

    monkeypatch.setattr(lsx.plots.common, "save_figure", spy)

    lam = np.linspace(-1.0, 1.0, 31)
    jobs = []
    for s in (0, 1):
        d = tmp_path / f"ct{s}"
        d.mkdir()
        loss = np.stack([0.01 + lam**2, np.exp(30 * np.abs(lam))])  # a basin and a curve reaching 1e13
        np.savez(
            d / "curve_taxonomy.npz",
            loss=loss,
            kinds=np.array(["gaussian", "independent"]),
            types=np.array(["v-basin", "v-basin"]),
            lams=np.stack([lam, lam]),
        )
        jobs.append(JobRecord(config={}, metrics={}, seed=s, job="curve_taxonomy", job_dir=d))
    out = draw_figure(plan.figures[0], jobs, tmp_path / "curves.png")
    assert out.is_file() and out.stat().st_size > 1000 and scales == ["log", "log"]
