"""fort_fig2 (Fort & Jastrzebski Fig. 2, radial tunnels): the preset composes at cpu scale, its claims name
registered statistics, and those give the right verdict on hand-made per-epoch lists (no training)."""

from pathlib import Path

import pytest

pytest.importorskip("lsx.claims.statistics")
from lsx.claims.records import JobRecord  # noqa: E402
from lsx.claims.statistics import get_statistic  # noqa: E402
from lsx.claims.verdicts import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, evaluate_claim  # noqa: E402

EPOCHS = [1, 3, 6, 12]
SETS = ([0, 1, 2], [3, 4, 5], [6, 7, 8])
UNIT_SETS = tuple([3 * k, 3 * k + 1, 3 * k + 2] for k in range(6))  # a verdict needs ≥ 6 disjoint sets of optima


def test_preset_composes_at_cpu_scale_and_its_claims_parse():
    from lsx.cli.reproduce import compose_point, make_plan

    plan = make_plan("fort_fig2")
    assert plan.scale == "cpu" and plan.unit.key == "analysis.seeds" and len(plan.points) == 12
    assert [p[-1] for p in plan.points[:3]] == [f"analysis.seeds=[{','.join(map(str, s))}]" for s in SETS]
    ids = {c["id"]: c for c in plan.claims}
    assert set(ids) == {"optima_move_outward", "radial_tunnels_approximately_orthogonal"}
    for c in plan.claims:
        get_statistic(c["statistic"])  # raises on an unregistered name
        assert all(c.get(k) for k in ("source", "statement", "paper_value", "args", "decision", "note"))
    c = compose_point(plan.points[1])
    assert c["analysis"]["job"] == "radial_tunnels" and len(c["analysis"]["seeds"]) == 3
    assert c["data"]["name"] == "digits" and c["analysis"]["epochs"] == EPOCHS
    assert set(EPOCHS) <= set(c["training"]["checkpoint_epochs"])


def _jobs(tmp_path: Path, sign: float) -> list[JobRecord]:
    jobs = []
    for k, seeds in enumerate(UNIT_SETS):
        d = tmp_path / f"set{k}"
        d.mkdir()
        radius = [20.0 + sign * 2.0 * e + 0.3 * k for e in EPOCHS]
        dist = [5.0 + sign * 0.5 * e + 0.1 * k for e in EPOCHS]
        jobs.append(
            JobRecord(
                config={"analysis": {"seeds": seeds}},
                seed=0,
                job_dir=d,
                metrics={"epochs": EPOCHS, "radius_by_epoch": radius, "pair_distance_by_epoch": dist},
                training=[
                    {"seed": s, "train_loss": 0.05, "test_acc": 0.95, "run_dir": f"run_{s}", "stopped_by": "epochs"}
                    for s in seeds
                ],
            )
        )
    return jobs


@pytest.mark.parametrize("sign, expected", [(1.0, REPRODUCED), (-1.0, NOT_REPRODUCED)])
def test_outward_claim_gives_the_right_verdict_on_synthetic_epochs(tmp_path, sign, expected):
    from lsx.cli.reproduce import make_plan

    jobs = _jobs(tmp_path, sign)
    claim = {c["id"]: c for c in make_plan("fort_fig2").claims}["optima_move_outward"]
    res = evaluate_claim(claim, jobs)
    assert res.verdict == expected, res.reason
    assert res.estimate.n == 6 and res.estimate.details["pairs"] == 24
    assert res.estimate.value == pytest.approx(sign * 1.0, abs=0.1)


@pytest.mark.parametrize("cosine, expected", [(0.02, REPRODUCED), (0.45, NOT_REPRODUCED), (0.2, INCONCLUSIVE)])
def test_orthogonality_claim_reads_the_last_epoch_per_set_of_optima(tmp_path, cosine, expected):
    """Independent of the radius: the pair cosine at the last epoch (the distance is √(2 − 2cos)·radius)."""
    from lsx.cli.reproduce import make_plan

    claim = {c["id"]: c for c in make_plan("fort_fig2").claims}["radial_tunnels_approximately_orthogonal"]
    jobs = []
    for k in range(6):
        curve = [0.0] * (len(EPOCHS) - 1) + [cosine + (0.01 * k if cosine != 0.2 else 0.04 * (k - 2.5))]
        jobs.append(
            JobRecord(
                config={"analysis": {"seeds": [3 * k, 3 * k + 1, 3 * k + 2]}},
                seed=0,
                job_dir=tmp_path / f"s{k}",
                metrics={"epochs": EPOCHS, "pair_cosine_by_epoch": curve},
            )
        )
    res = evaluate_claim(claim, jobs)
    assert res.verdict == expected, res.reason
    assert res.estimate.n == 6
