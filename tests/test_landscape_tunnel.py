"""Tunnel width by bracketing + bisection on analytic bowls; SWA vs ensembling on constructed cases."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from lsx.landscape.paths.ensembles import compare_swa_and_ensemble, snapshot_epochs, weight_average
from lsx.landscape.paths.tunnel import radial_distance, threshold_value, tunnel_width


def test_bisection_finds_known_width_of_isotropic_bowl():
    c = torch.tensor([3.0, -1.0, 2.0, 0.5], dtype=torch.float64)
    loss = lambda th: float(((th - c) ** 2).sum())  # noqa: E731
    # L(c + r u) = r², threshold 0.25 (absolute) → width exactly 0.5 along every unit direction
    res = tunnel_width(
        loss,
        c,
        num_directions=6,
        seed=0,
        threshold_mode="absolute",
        threshold=0.25,
        initial_step=0.01,
        max_distance=10,
        rtol=1e-6,
    )
    assert np.allclose(res.distances, 0.5, rtol=2e-6)
    assert np.allclose(res.angular, np.arctan(0.5 / float(c.norm())))  # default angle: arctan(r/‖θ‖)
    assert res.summary["theta_norm"] == pytest.approx(float(c.norm())) and res.summary["distance_mean"] == pytest.approx(
        0.5, rel=2e-6
    )
    assert res.summary["fraction_reached"] == 1.0
    assert res.evaluations < 6 * 40  # bisection, not a grid


def test_relative_threshold_recovers_known_width_whatever_the_optimum_loss():
    """Synthetic landscape L(θ) = L0 + ‖θ − c‖² / w²: loss L0 + 1 is hit at r = w exactly. Two optima of
    the same shape but different L0 (an undertrained one) get the same width from a relative threshold
    and different widths from an absolute one — the artefact the relative default avoids."""
    c = torch.tensor([2.0, -1.0, 0.5, 1.0, 3.0], dtype=torch.float64)
    widths = {}
    for l0 in (0.01, 0.5):
        loss = lambda th, l0=l0: l0 + float(((th - c) ** 2).sum()) / 0.3**2  # noqa: E731
        rel = tunnel_width(loss, c, 8, seed=1, threshold_mode="relative_delta", threshold=1.0, rtol=1e-7)
        fac = tunnel_width(loss, c, 8, seed=1, threshold_mode="relative_factor", threshold=3.0, rtol=1e-7)
        ab = tunnel_width(loss, c, 8, seed=1, threshold_mode="absolute", threshold=1.2, rtol=1e-7)
        assert np.allclose(rel.distances, 0.3, rtol=1e-6)
        assert np.allclose(fac.distances, 0.3 * math.sqrt(2 * l0), rtol=1e-6)  # 3·L0 hit at ‖Δ‖² = 2·L0·w²
        assert rel.angle == "arctan" and np.allclose(rel.angular, np.arctan(0.3 / float(c.norm())))
        widths[l0] = (rel.summary["width_mean"], ab.summary["width_mean"])
    assert widths[0.01][0] == pytest.approx(widths[0.5][0], rel=1e-6)
    assert widths[0.5][1] < 0.8 * widths[0.01][1]


def test_directions_are_orthogonal_to_theta_and_ratio_angle_is_available():
    c = torch.tensor([3.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    # the loss grows only along θ: orthogonal directions never leave the tunnel, raw ones do
    loss = lambda th: float((th[0] - 3.0) ** 2)  # noqa: E731
    orth = tunnel_width(loss, c, 5, 0, "relative_delta", 1.0, max_distance=20.0)
    raw = tunnel_width(loss, c, 5, 0, "relative_delta", 1.0, max_distance=20.0, orthogonal=False, angle="ratio")
    assert orth.summary["fraction_reached"] == 0.0 and raw.summary["fraction_reached"] == 1.0
    assert np.allclose(raw.angular, raw.distances / 3.0)
    with pytest.raises(ValueError, match="valid: arctan, ratio"):
        tunnel_width(loss, c, 1, 0, angle="degrees")


def test_anisotropic_bowl_gives_direction_dependent_width():
    a = torch.tensor([1.0, 100.0], dtype=torch.float64)
    loss = lambda th: float((a * th**2).sum())  # noqa: E731
    r1 = radial_distance(lambda r: float(a[0]) * r**2, 1.0, 0.01, 100, 1e-8)
    r2 = radial_distance(lambda r: float(a[1]) * r**2, 1.0, 0.01, 100, 1e-8)
    assert r1.distance == pytest.approx(1.0, rel=1e-7) and r2.distance == pytest.approx(0.1, rel=1e-7)
    th = torch.tensor([0.0, 0.0], dtype=torch.float64)
    with pytest.raises(ValueError, match="not above the loss at the optimum"):
        tunnel_width(loss, th, 3, 0, "absolute", 0.0)


def test_relative_thresholds_and_unreached_flag():
    assert threshold_value("relative_factor", 2.0, 0.5) == 1.0
    assert threshold_value("relative_delta", 0.1, 0.5) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="valid: absolute"):
        threshold_value("percent", 1, 1)
    flat = radial_distance(lambda r: 0.0, 1.0, 0.1, 5.0)
    assert not flat.reached and math.isnan(flat.distance)
    nan_wall = radial_distance(lambda r: float("nan") if r > 2 else 0.0, 1.0, 0.1, 50, 1e-6)
    assert nan_wall.distance == pytest.approx(2.0, rel=1e-5)  # divergence counts as above threshold
    with pytest.raises(ValueError, match="num_directions"):
        tunnel_width(lambda t: 0.0, torch.ones(3), 0, 0)


def test_snapshot_epochs_and_errors():
    assert snapshot_epochs(20, 5) == [5, 10, 15, 20]
    assert snapshot_epochs(20, 5, 2) == [15, 20]
    with pytest.raises(ValueError, match="longer than training"):
        snapshot_epochs(4, 5)
    with pytest.raises(ValueError, match=">= 1"):
        snapshot_epochs(20, 5, 0)


def test_snapshots_skip_the_burn_in_and_keep_the_last_k():
    assert snapshot_epochs(30, 3, burn_in_epochs=12) == [15, 18, 21, 24, 27, 30]  # a cycle ending at 12 is still burn-in
    assert snapshot_epochs(30, 3, 4, burn_in_epochs=12) == [21, 24, 27, 30]
    assert snapshot_epochs(30, 3, 6, burn_in_epochs=13) == [15, 18, 21, 24, 27, 30]
    with pytest.raises(ValueError, match="after the burn-in of 24 epochs"):
        snapshot_epochs(30, 3, 3, burn_in_epochs=24)
    with pytest.raises(ValueError, match="burn_in_epochs must be in 0..29"):
        snapshot_epochs(30, 3, burn_in_epochs=30)


def _linear(w, b):
    m = nn.Linear(2, 2)
    with torch.no_grad():
        m.weight.copy_(torch.tensor(w, dtype=torch.float32))
        m.bias.copy_(torch.tensor(b, dtype=torch.float32))
    return m


def test_swa_of_linear_models_is_the_averaged_model_and_identical_ensemble_is_neutral():
    m1, m2 = _linear([[1, 0], [0, 1]], [0, 0]), _linear([[3, 2], [0, -1]], [1, 0])
    avg = weight_average([m1, m2])
    x = torch.randn(5, 2)
    expected = x @ torch.tensor([[2.0, 1.0], [0.0, 0.0]]).T + torch.tensor([0.5, 0.0])
    assert torch.allclose(avg(x), expected, atol=1e-6)
    y = torch.randint(0, 2, (5,))
    same = compare_swa_and_ensemble([m1, m1], (x, y))
    assert same["ensemble"]["acc"] == same["snapshots"][0]["acc"] == same["swa"]["acc"]
    assert same["advantage_loss"] == pytest.approx(0.0, abs=1e-6)


def _two_layer(w1, w2):
    m = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor(w1, dtype=torch.float32))
        m[2].weight.copy_(torch.tensor(w2, dtype=torch.float32))
    return m


def test_ensemble_beats_weight_average_across_permuted_solutions():
    # the same function with its two hidden units swapped: two "wedges" of one solution.
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [2.0, 0.0], [-2.0, 0.0]])
    y = torch.tensor([0, 1, 0, 1])
    m1 = _two_layer([[1, 0], [-1, 0]], [[5, 0], [0, 5]])
    m2 = _two_layer([[-1, 0], [1, 0]], [[0, 5], [5, 0]])
    res = compare_swa_and_ensemble([m1, m2], (x, y))
    assert res["snapshots"][0]["acc"] == res["snapshots"][1]["acc"] == res["ensemble"]["acc"] == 1.0
    assert res["swa"]["loss"] == pytest.approx(math.log(2), rel=1e-5)  # averaged weights are zero: chance
    assert res["advantage_loss"] > 0.6


def test_update_bn_is_applied_to_the_average():
    torch.manual_seed(0)
    nets = [nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)) for _ in range(2)]
    data = torch.randn(64, 3)
    swa = weight_average(nets, [data])
    with torch.no_grad():
        act = swa.module[0](data)
    assert torch.allclose(swa.module[1].running_mean, act.mean(0), atol=1e-5)
