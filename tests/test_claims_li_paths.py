"""Li et al. per-unit claims (stats_li_paths): each preset rule accepts the paper's reported numbers and can
fail, on synthetic job records with one value per training seed."""

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from lsx.claims.records import JobRecord
from lsx.claims.statistics import InsufficientData, get_statistic
from lsx.claims.verdicts import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, evaluate_claim

EXP = Path(__file__).resolve().parent.parent / "conf" / "experiment"


def _claims(preset):
    return {c["id"]: c for c in yaml.safe_load((EXP / f"{preset}.yaml").read_text())["claims"]}


def _job(seed, config, metrics, train_loss=0.01, test_acc=0.9, job_dir=None):
    return JobRecord(
        config=config,
        metrics=metrics,
        seed=seed,
        job_dir=job_dir or Path(f"job_{seed}_{id(metrics)}"),
        training=[{"seed": seed, "train_loss": train_loss, "test_acc": test_acc, "stopped_by": "target"}],
    )


# ------------------------------------------------------------------------------------------- Fig. 9 / Sec. 7.1
def test_unit_value_is_one_value_per_seed_with_a_sign_interval():
    stat = get_statistic("li_unit_value")
    jobs = [_job(s, {}, {"v": v}) for s, v in enumerate([0.5, 0.6, 0.7, 0.8, 0.9, 0.95])]
    jobs.append(_job(0, {}, {"v": 0.7}))  # a second job of seed 0 is averaged into it, not a seventh unit
    e = stat(jobs, y="metrics.v")
    assert e.n == 6 and (e.lo, e.hi) == (pytest.approx(0.6), 0.95)
    assert math.isnan(stat(jobs[:5], y="metrics.v").lo)  # 5 units: no 95% sign interval
    with pytest.raises(InsufficientData, match="no job"):
        stat(jobs, y="metrics.v", where={"optimizer.name": "adam"})


@pytest.mark.parametrize(
    "shares, verdict",
    [
        ([0.40, 0.52, 0.65, 0.78, 0.88, 0.90], REPRODUCED),  # the paper's range, 40-90%, Sec. 7.2
        ([0.97, 0.98, 0.985, 0.99, 0.99, 0.995], REPRODUCED),  # lower-dimensional still
        ([0.07, 0.10, 0.12, 0.15, 0.2, 0.25], NOT_REPRODUCED),  # variation spread over the path's dimensions
    ],
)
def test_fig9_rule_accepts_the_papers_range_and_fails_a_spread_path(shares, verdict):
    claim = _claims("li_fig9")["two_components_explain_most"]
    jobs = [_job(s, {}, {"explained_variance_2d": v}) for s, v in enumerate(shares)]
    assert evaluate_claim(claim, jobs).verdict == verdict


def test_sec71_rule_needs_orders_of_magnitude():
    claim = _claims("li_fig9")["random_directions_miss_the_path"]
    far = [_job(s, {}, {"pca_over_random_log10": v}) for s, v in enumerate([3.1, 3.5, 3.8, 4.0, 4.2, 4.4])]
    assert evaluate_claim(claim, far).verdict == REPRODUCED
    near = [_job(s, {}, {"pca_over_random_log10": v}) for s, v in enumerate([0.2, 0.5, 0.8, 1.0, 1.2, 1.5])]
    assert evaluate_claim(claim, near).verdict == NOT_REPRODUCED


# ------------------------------------------------------------------------------------------- Figs. 2-3
def test_sign_flip_units_is_positive_only_for_seeds_that_flip():
    stat = get_statistic("li_sign_flip_units")
    claim = _claims("li_fig2")["weight_norm_flips_with_wd"]
    wd_b = claim["args"]["b"]
    flips = [
        _job(s, {"optimizer": {"weight_decay": w}}, {"weight_norm_ratio": r})
        for s in range(6)
        for w, r in ((0.0, 2.4 + 0.1 * s), (wd_b, 0.33 + 0.02 * s))
    ]
    e = stat(flips, **claim["args"])
    assert (
        e.n == 6
        and e.lo > 0
        and e.value == pytest.approx(np.median([min(math.log(2.4 + 0.1 * s), -math.log(0.33 + 0.02 * s)) for s in range(6)]))
    )
    assert evaluate_claim(claim, flips).verdict == REPRODUCED
    # no flip: the small batch has the larger weights at both decays (the former CPU preset's outcome)
    same = [
        _job(s, {"optimizer": {"weight_decay": w}}, {"weight_norm_ratio": r})
        for s in range(6)
        for w, r in ((0.0, 2.0), (wd_b, 1.07 + 0.01 * s))
    ]
    assert evaluate_claim(claim, same).verdict == NOT_REPRODUCED
    with pytest.raises(InsufficientData, match="not positive"):
        stat([_job(0, {"optimizer": {"weight_decay": 0.0}}, {"weight_norm_ratio": 0.0})], **claim["args"])


# ------------------------------------------------------------------------------------------- Figs. 4-5, Table 1
def _panel_jobs(values, key="data.batch_size", wd=5e-4, opt="sgd", bs=None, metric="sharpness", center_loss=0.02):
    """values: {side value: [per-seed y]} within one panel."""
    jobs = []
    for side, ys in values.items():
        for s, y in enumerate(ys):
            cfg = {"optimizer": {"weight_decay": wd, "name": opt}, "data": {"batch_size": bs}}
            if key == "data.batch_size":
                cfg["data"]["batch_size"] = side
            else:
                cfg["optimizer"]["name"] = side
            jobs.append(_job(s, cfg, {metric: y, "center_train_loss": center_loss}))
    return jobs


def test_small_batch_flatter_is_decided_per_panel():
    """Fig. 4's four panels (optimizer x weight decay) each get a verdict; one panel's reversal is not averaged away."""
    claims = _claims("li_fig5")
    assert {c for c in claims if c.startswith("small_batch_flatter_")} == {
        f"small_batch_flatter_{o}_{w}" for o in ("sgd", "adam") for w in ("wd0", "wd5e4")
    }
    flat = {32: [0.01 + 0.001 * s for s in range(6)], 512: [0.03] * 6}
    sharp = {32: [0.05] * 6, 512: [0.02 + 0.001 * s for s in range(6)]}
    jobs = (
        _panel_jobs(flat, wd=0.0)
        + _panel_jobs(sharp, wd=5e-4)
        + _panel_jobs(flat, wd=0.0, opt="adam")
        + _panel_jobs(flat, wd=5e-4, opt="adam")
    )
    want = {"sgd_wd0": REPRODUCED, "sgd_wd5e4": NOT_REPRODUCED, "adam_wd0": REPRODUCED, "adam_wd5e4": REPRODUCED}
    for tag, verdict in want.items():
        r = evaluate_claim(claims[f"small_batch_flatter_{tag}"], jobs)
        assert r.verdict == verdict and r.estimate.n == 6, (tag, r.reason)


def test_li_paired_excludes_seeds_that_did_not_reach_the_target():
    stat = get_statistic("li_paired")
    args = dict(_claims("li_fig5")["small_batch_flatter_sgd_wd0"]["args"])
    jobs = _panel_jobs({32: [0.01] * 6, 512: [0.03] * 6}, wd=0.0)
    jobs[-1].metrics["center_train_loss"] = 0.6  # seed 5's large-batch net is not trained
    e = stat(jobs, **args)
    assert e.n == 5 and "center_train_loss 0.6" in e.details["excluded"][5]
    assert e.value == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="valid: log_ratio"):
        stat(jobs, **dict(args, op="nope"))
    with pytest.raises(InsufficientData, match="no seed has trained jobs"):
        stat(jobs, **dict(args, where={"optimizer.weight_decay": 0.1}))


@pytest.mark.parametrize(
    "cid, errors",
    [
        ("small_batch_generalizes_better_sgd_wd0", {32: 7.37, 512: 11.07}),  # Table 1, SGD, WD 0
        ("small_batch_generalizes_better_sgd_wd5e4", {32: 6.00, 512: 10.19}),  # Table 1, SGD, WD 5e-4
        ("small_batch_generalizes_better_adam_wd0", {32: 7.44, 512: 10.91}),  # Table 1, Adam, WD 0
        ("small_batch_generalizes_better_adam_wd5e4", {32: 7.80, 512: 9.52}),  # Table 1, Adam, WD 5e-4
        ("adam_higher_test_error_than_sgd", {"sgd": 6.00, "adam": 7.80}),  # Table 1, bs 128, WD 5e-4
    ],
)
def test_generalization_rules_accept_table1_and_reject_a_reversed_gap(cid, errors):
    claim = _claims("li_fig5")[cid]
    a = claim["args"]
    wd = a["where"]["optimizer.weight_decay"]
    noise = [-0.2, -0.1, 0.0, 0.05, 0.1, 0.2]  # points of test error across seeds
    acc = {k: [1 - (e + n) / 100 for n in noise] for k, e in errors.items()}
    kw = dict(
        key=a["key"],
        wd=wd,
        metric="center_test_acc",
        bs=a["where"].get("data.batch_size"),
        opt=a["where"].get("optimizer.name", "sgd"),
    )
    assert evaluate_claim(claim, _panel_jobs(acc, **kw)).verdict == REPRODUCED
    reversed_ = dict(zip(acc, reversed(list(acc.values()))))
    assert evaluate_claim(claim, _panel_jobs(reversed_, **kw)).verdict == NOT_REPRODUCED


def test_adam_claims_are_inconclusive_without_an_adam_arm():
    claim = _claims("li_fig5")["adam_sharper_than_sgd"]
    sgd_only = _panel_jobs({32: [0.01] * 6, 512: [0.03] * 6})
    r = evaluate_claim(claim, sgd_only)
    assert r.verdict == INCONCLUSIVE and "no seed has trained jobs" in r.reason
    both = sgd_only + _panel_jobs({"adam": [0.03 + 0.001 * s for s in range(6)], "sgd": [0.01] * 6}, key="optimizer.name", bs=32)
    assert evaluate_claim(claim, both).verdict == REPRODUCED


@pytest.mark.slow  # end to end, several seconds each: make test-all
def test_li_fig5_couples_each_optimizer_to_its_learning_rate():
    from lsx.cli.reproduce import compose_point, make_plan

    lrs = {}
    points = make_plan("li_fig5").points
    for p in [p for p in points if "data.batch_size=512" in p and "optimizer.weight_decay=0.0" in p]:  # one per optimizer
        c = compose_point(p)
        lrs.setdefault(c["optimizer"]["name"], set()).add(c["optimizer"]["lr"])
    assert lrs == {"sgd": {0.05}, "adam": {0.001}}


# ------------------------------------------------------------------------------------------- Sec. 6.6 / Fig. 7
def _surface_job(tmp_path, seed, width, curvature, test_acc):
    d = tmp_path / f"w{width}_s{seed}"
    d.mkdir()
    x = y = np.linspace(-1, 1, 11)
    X, Y = np.meshgrid(x, y)
    np.savez(d / "surface_grid.npz", x=x, y=y, train_loss=0.01 + curvature * (X**2 + Y**2))
    return _job(seed, {"model": {"width": width}}, {}, test_acc=test_acc, job_dir=d)


@pytest.mark.parametrize("agree, verdict", [(True, REPRODUCED), (False, NOT_REPRODUCED)])
def test_flatness_tracks_test_error_per_seed(tmp_path, agree, verdict):
    claim = _claims("li_fig7")["flatness_tracks_test_error"]
    jobs = []
    for s in range(6):
        for k, w in enumerate((0.25, 0.5, 1.0)):
            curv = 3.0 - k + 0.1 * s  # wider: flatter (Fig. 7)
            err = 0.10 - 0.02 * k if agree else 0.06 + 0.02 * k
            jobs.append(_surface_job(tmp_path, s, w, curv, 1 - err - 0.001 * s))
    r = evaluate_claim(claim, jobs)
    assert r.verdict == verdict, r.reason
    assert r.estimate.n == 6 and r.estimate.value == (1.0 if agree else -1.0)


def test_flatness_tracks_test_error_drops_seeds_with_tied_errors(tmp_path):
    stat = get_statistic("li_flatness_tracks_error")
    jobs = [_surface_job(tmp_path, 0, w, c, 0.9) for w, c in ((0.25, 3.0), (0.5, 2.0), (1.0, 1.0))]
    with pytest.raises(InsufficientData, match="3 or more values"):
        stat(jobs, x="model.width")


# ------------------------------------------------------------------------------------------- presets
@pytest.mark.parametrize("preset", ["li_fig2", "li_fig5", "li_fig9", "draxler_table1"])
def test_presets_compose_at_cpu_scale_and_their_claims_parse(preset):
    from lsx.cli.reproduce import compose_point, make_plan

    plan = make_plan(preset)
    assert plan.claims and plan.points
    compose_point(plan.points[0])


def test_li_fig2_cpu_reaches_the_papers_accumulated_decay():
    """Fig. 3's mechanism is the decay the small batch accumulates: Σ lr·wd over its steps ≈ 3.1 in the paper."""
    from lsx.cli.reproduce import compose_point, make_plan
    from lsx.training.runner import build_data

    plan = make_plan("li_fig2")
    assert plan.train_loss_ratio == 3.0  # the former escape hatch (30) is gone
    point = [p for p in plan.points if any(o.startswith("optimizer.weight_decay=") and not o.endswith("=0.0") for o in p)][0]
    c = compose_point(point)
    bs = c["analysis"]["endpoints"][0]["overrides"]["data"]["batch_size"]
    n_train = len(build_data(c).split("train")[0])
    steps = math.ceil(n_train / bs)
    lr, wd, t = c["optimizer"]["lr"], c["optimizer"]["weight_decay"], c["training"]["epochs"]
    bounds = [0, *c["scheduler"]["milestones"], t]
    lr_epochs = sum(lr * c["scheduler"]["gamma"] ** k * (b - a) for k, (a, b) in enumerate(zip(bounds, bounds[1:])))
    paper = math.ceil(50000 / 128) * (0.1 * 150 + 0.01 * 75 + 0.001 * 50) * 5e-4
    assert paper == pytest.approx(3.1, abs=0.05)
    assert steps * lr_epochs * wd == pytest.approx(paper, rel=0.15)  # 41 steps/epoch × 5.16 × 0.013 ≈ 2.75


@pytest.mark.parametrize("preset", ["li_fig2", "li_fig5", "li_fig7", "li_fig9", "draxler_table1"])
def test_false_positive_rate_of_each_per_unit_rule_at_six_units(preset):
    """DESIGN: a rule's false-positive rate is known at its unit count. Per-unit values whose median sits on
    the bound (the null) give "reproduced" at most P(all 6 units on one side) = 1/64 under the sign interval."""
    from lsx.claims.inference import null_rates, unit_interval

    mine = ("li_unit_value", "li_paired", "li_sign_flip_units", "li_flatness_tracks_error", "draxler_table1")
    for c in [c for c in _claims(preset).values() if c["statistic"] in mine]:
        ((_, b),) = c["decision"].items()

        def draw(rng, b=float(b), test=c["args"].get("test", "sign")):
            v = rng.normal(0.0, 0.3, 6)
            vals = b * np.exp(v) if b > 0 else v + b  # continuous, median exactly on the bound
            _, lo, hi = unit_interval(vals, test)
            return lo, hi

        rates = null_rates(draw, c["decision"], trials=600, seed=1)
        assert rates[REPRODUCED] <= 0.04, (c["id"], rates)
