"""NEB / AutoNEB on analytic potentials with known saddles, and the pieces they are built from."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lsx.landscape.paths.autoneb import (
    MEP,
    auto_neb,
    between_points,
    check_schedule,
    dense_path,
    evaluate_path,
    find_insertions,
    insert_pivots,
    paper_schedule,
)
from lsx.landscape.paths.neb import arc_lengths, improved_tangents, linear_path, neb, project_out_tangent, redistribute
from lsx.landscape.toy.potentials import (
    CURVED_VALLEY,
    DOUBLE_WELL,
    MULLER_BROWN,
    double_well,
    gradient_and_hessian,
    morse_index,
    muller_brown,
    refine_stationary_point,
)

F64 = torch.float64


def _refined(potential, points):
    return [refine_stationary_point(potential.fn, p) for p in points]


# ---------------------------------------------------------------------------------------------- potentials
def test_potentials_stationary_points_match_their_listing():
    for pot in (MULLER_BROWN, DOUBLE_WELL, CURVED_VALLEY):
        for guess, energy in zip(pot.minima, pot.minima_energies):
            x, e = refine_stationary_point(pot.fn, guess)
            assert np.linalg.norm(x - guess) < 2e-3 and abs(e - energy) < 2e-2
            assert morse_index(pot.fn, x) == 0
        for guess, energy in zip(pot.saddles, pot.saddle_energies):
            x, e = refine_stationary_point(pot.fn, guess)
            assert np.linalg.norm(x - guess) < 2e-3 and abs(e - energy) < 2e-2
            assert morse_index(pot.fn, x) == 1
            assert np.abs(gradient_and_hessian(pot.fn, x)[0]).max() < 1e-8


def test_muller_brown_first_saddle_is_the_max_of_a_fine_scan_across_it():
    # independent of root finding: along the unstable direction the saddle is a maximum,
    # along the stable one a minimum
    x, e = refine_stationary_point(muller_brown, MULLER_BROWN.saddles[0])
    _, h = gradient_and_hessian(muller_brown, x)
    w, v = np.linalg.eigh(h)
    s = np.linspace(-1e-2, 1e-2, 2001)
    along_down = [float(muller_brown(torch.tensor(x + t * v[:, 0]))) for t in s]
    along_up = [float(muller_brown(torch.tensor(x + t * v[:, 1]))) for t in s]
    assert np.argmax(along_down) == 1000 and np.argmin(along_up) == 1000
    assert max(along_down) == pytest.approx(e, abs=1e-12)


def test_potentials_reject_wrong_shapes():
    with pytest.raises(ValueError, match="shape"):
        muller_brown(torch.zeros(3, dtype=F64))
    with pytest.raises(ValueError, match="shape"):
        double_well(torch.zeros(2, 1, dtype=F64))


# ---------------------------------------------------------------------------------------------- tangent
def _tangent(energies, points=((0.0, 0.0), (1.0, 0.0), (1.0, 1.0))):
    return improved_tangents(torch.tensor(points, dtype=F64), energies)[0].numpy()


@pytest.mark.parametrize(
    "energies, expected",
    [
        ([0.0, 1.0, 2.0], (0.0, 1.0)),  # rising towards i+1: τ+
        ([2.0, 1.0, 0.0], (1.0, 0.0)),  # rising towards i-1: τ-
        ([0.0, 3.0, 1.0], (2.0, 3.0)),  # maximum, E+ > E-: τ+·ΔEmax + τ-·ΔEmin = (0,1)·3 + (1,0)·2
        ([2.0, 3.0, 0.0], (3.0, 1.0)),  # maximum, E+ < E-: τ+·ΔEmin + τ-·ΔEmax = (0,1)·1 + (1,0)·3
        ([1.0, 0.0, 3.0], (1.0, 3.0)),  # minimum, E+ > E-: (0,1)·3 + (1,0)·1
        ([5.0, 5.0, 5.0], (1.0, 1.0)),  # flat: central difference
    ],
)
def test_improved_tangent_hand_cases(energies, expected):
    exp = np.array(expected) / np.linalg.norm(expected)
    np.testing.assert_allclose(_tangent(energies), exp, atol=1e-12)


def test_tangent_projection_removes_the_component_along_the_path():
    g = torch.tensor([3.0, 4.0], dtype=F64)
    tau = torch.tensor([0.6, 0.8], dtype=F64)
    perp = project_out_tangent(g, tau)
    assert float(perp @ tau) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(project_out_tangent(torch.tensor([-0.8, 0.6], dtype=F64), tau).numpy(), [-0.8, 0.6])


# ---------------------------------------------------------------------------------------------- redistribution
def test_redistribution_on_a_line_gives_equal_spacing():
    t = torch.tensor([0.0, 0.05, 0.1, 0.7, 0.71, 1.0], dtype=F64)
    path = t[:, None] * torch.tensor([[2.0, -1.0, 0.5]], dtype=F64)
    out = redistribute(path)
    seg = (out[1:] - out[:-1]).norm(dim=1)
    np.testing.assert_allclose(seg.numpy(), seg.mean().item(), rtol=1e-12)
    assert torch.equal(out[0], path[0]) and torch.equal(out[-1], path[-1])
    np.testing.assert_allclose(redistribute(out).numpy(), out.numpy(), atol=1e-14)


def test_redistribution_follows_a_bent_path_at_equal_arc_length():
    # L-shaped path of length 2 with an uneven pivot: 4 pivots go to arc length 0, 2/3, 4/3, 2
    path = torch.tensor([[0.0, 0.0], [0.1, 0.0], [1.0, 0.0], [1.0, 1.0]], dtype=F64)
    out = redistribute(path)
    np.testing.assert_allclose(out.numpy(), [[0, 0], [2 / 3, 0], [1, 1 / 3], [1, 1]], atol=1e-12)
    assert arc_lengths(path)[-1] == pytest.approx(2.0)


def test_redistribution_tolerates_coincident_pivots():
    path = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [3.0, 0.0]], dtype=F64)
    out = redistribute(path)
    np.testing.assert_allclose(out[:, 0].numpy(), [0, 1, 2, 3], atol=1e-12)


# ---------------------------------------------------------------------------------------------- NEB
def test_neb_on_double_well_keeps_end_points_and_reaches_the_saddle():
    a, b = torch.tensor([-1.0, 0.0], dtype=F64), torch.tensor([1.0, 0.0], dtype=F64)
    bent = linear_path(a, b, 6)
    bent[1:-1, 1] = torch.tensor([0.3, 0.5, 0.4, -0.4, -0.2, 0.35], dtype=F64)  # start off the MEP (y = 0)
    res = neb(DOUBLE_WELL, bent, steps=300, lr=0.02)
    assert torch.equal(res.pivots[0], a) and torch.equal(res.pivots[-1], b)
    assert res.pivots[:, 1].abs().max() < 1e-3  # relaxed onto y = 0
    seg = (res.pivots[1:] - res.pivots[:-1]).norm(dim=1)
    assert float(seg.max() - seg.min()) < 1e-3  # still equally spaced
    assert not res.had_nan and res.steps == 300


def test_neb_passes_global_step_indices_to_the_loss():
    seen = []

    def loss(theta, step):
        seen.append(step)
        return double_well(theta)

    a, b = torch.tensor([-1.0, 0.0], dtype=F64), torch.tensor([1.0, 0.0], dtype=F64)
    neb(loss, linear_path(a, b, 2), steps=3, lr=0.01, start_step=10)
    assert sorted(set(seen)) == [10, 11, 12]
    assert seen.count(10) == 4  # both end points and both interior pivots see the same batch index


def test_nan_loss_is_reported_and_the_pivot_gets_no_nan_update():
    a, b = torch.tensor([-1.0, 0.0], dtype=F64), torch.tensor([1.0, 0.0], dtype=F64)
    start = linear_path(a, b, 3)
    start[1:-1, 1] = 0.3
    bad = start[2].clone()

    def loss(theta, step):
        if step == 0 and torch.allclose(theta.detach(), bad):
            return (theta * float("nan")).sum()
        return double_well(theta)

    res = neb(loss, start, steps=1, lr=0.05, optimizer=torch.optim.SGD)
    assert res.had_nan and res.nan_steps == [0] and res.nan_count == 1
    assert torch.isfinite(res.pivots).all()
    assert np.isnan(res.energies[2]) and np.isfinite(np.delete(res.energies, 2)).all()
    # the healthy pivots moved down towards y = 0; the NaN one only moved by redistribution (x), not in y
    assert float(res.pivots[1, 1]) < 0.3 and float(res.pivots[3, 1]) < 0.3
    assert float(res.pivots[2, 1]) == pytest.approx(0.3, abs=1e-12)


def test_neb_works_on_a_network_with_minibatches():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    from lsx.landscape.engine.flat import FlatParams, functional_loss

    flat = FlatParams(model)
    batches = [functional_loss(model, flat, [(x[i : i + 16], y[i : i + 16])]) for i in range(0, 64, 16)]
    a = flat.get().clone()
    b = a + 0.5 * torch.randn(a.numel(), generator=g)
    res = neb(lambda th, step: batches[step % len(batches)](th), linear_path(a, b, 3), steps=20, lr=0.05, weight_decay=1e-4)
    assert res.pivots.shape == (5, a.numel()) and torch.isfinite(res.pivots).all()
    assert torch.equal(res.pivots[0], a) and torch.equal(res.pivots[-1], b)


def test_neb_rejects_bad_paths():
    a = torch.tensor([-1.0, 0.0], dtype=F64)
    with pytest.raises(ValueError, match="identical"):
        neb(DOUBLE_WELL, torch.stack([a, a * 0.5, a]), steps=1, lr=0.1)
    with pytest.raises(ValueError, match="at least 3"):
        neb(DOUBLE_WELL, torch.stack([a, -a]), steps=1, lr=0.1)
    with pytest.raises(ValueError, match="learning rate"):
        neb(DOUBLE_WELL, linear_path(a, -a, 1), steps=1, lr=0.0)
    with pytest.raises(ValueError, match="architecture"):
        linear_path(a, torch.zeros(3, dtype=F64), 2)


# ---------------------------------------------------------------------------------------------- AutoNEB pieces
def test_paper_schedule_and_scaling():
    s = paper_schedule()
    assert len(s) == 14 and sum(st for st, _ in s) == 4 * 1000 + 2 * 2000 + 8 * 1000
    assert [lr for _, lr in s] == [0.1] * 6 + [0.01] * 4 + [0.001] * 4
    small = paper_schedule(step_scale=0.01, lr_scale=0.5)
    assert [st for st, _ in small] == [10] * 4 + [20] * 2 + [10] * 8
    assert small[0][1] == pytest.approx(0.05)
    assert all(st >= 1 for st, _ in paper_schedule(step_scale=1e-6))


def test_empty_or_malformed_schedule_is_a_clear_error():
    a, b = torch.tensor([-1.0, 0.0], dtype=F64), torch.tensor([1.0, 0.0], dtype=F64)
    with pytest.raises(ValueError, match="no cycles"):
        auto_neb(DOUBLE_WELL, a, b, [])
    with pytest.raises(ValueError, match="cycle 1"):
        check_schedule([(10, 0.1), (0, 0.1)])
    with pytest.raises(ValueError, match="identical"):
        auto_neb(DOUBLE_WELL, a, a.clone(), [(10, 0.1)])
    with pytest.raises(ValueError, match="architecture"):
        auto_neb(DOUBLE_WELL, a, torch.zeros(3, dtype=F64), [(10, 0.1)])


def test_insertion_rule_on_a_hand_made_path():
    # pivots 0 → 10 → 0 (range 10, threshold 20% = 2); 3 between points per segment at t = 1/4, 1/2, 3/4
    e_piv = [0.0, 10.0, 0.0]
    lin0 = np.array([2.5, 5.0, 7.5])
    seg0 = lin0 + np.array([0.0, 2.5, 0.0])  # bump of 2.5 at the middle point: insert there
    seg1 = lin0[::-1] + np.array([1.9, 0.0, 0.0])  # 1.9 < 2: no insertion
    assert find_insertions(e_piv, [seg0, seg1], 0.2) == [(0, 1)]
    assert find_insertions(e_piv, [seg0, seg1], 0.15) == [(0, 1), (1, 0)]
    assert find_insertions(e_piv, [seg0, seg1], 0.3) == []
    # the largest excess wins, not the highest value: t=3/4 is higher (7.5) than the bump at t=1/4 (2.5+2.2)
    assert find_insertions(e_piv, [lin0 + np.array([2.2, 0, 0]), lin0[::-1]], 0.2) == [(0, 0)]
    # a flat path never inserts; non-finite points are ignored
    assert find_insertions([1.0, 1.0], [[1.0, 1.0, 1.0]], 0.2) == []
    # the range is the pivots' (authors' rule): a bump of 2.2 over pivots spanning 10 qualifies even though
    # a second segment peaks at 13 (all-points range 13 would need 2.6)
    assert find_insertions(e_piv, [lin0 + np.array([0, 2.2, 0]), lin0[::-1] + np.array([0, 8.0, 0])], 0.2) == [(0, 1), (1, 1)]
    assert find_insertions(e_piv, [lin0 + np.array([0, 2.2, 0]), lin0[::-1] + np.array([0, 1.0, 0])], 0.2) == [(0, 1)]
    assert find_insertions(e_piv, [[np.nan, 5.0, 7.5], lin0[::-1]], 0.2) == []


def test_insert_pivots_puts_the_new_pivot_at_the_chosen_point():
    pivots = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 2.0]], dtype=F64)
    out = insert_pivots(pivots, [(1, 2)], num_between=3)  # segment 1, t = 3/4
    np.testing.assert_allclose(out.numpy(), [[0, 0], [1, 0], [1, 1.5], [1, 2]])
    with pytest.raises(ValueError, match="one insertion per segment"):
        insert_pivots(pivots, [(0, 0), (0, 1)], num_between=3)


def test_dense_path_and_evaluate_path():
    pivots = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]], dtype=F64)
    pts, pos = dense_path(pivots, 9)
    assert pts.shape == (21, 2)
    np.testing.assert_allclose(pos, np.linspace(0, 2, 21))
    np.testing.assert_allclose(pts[5].numpy(), [0.5, 0.0])
    np.testing.assert_allclose(pts[15].numpy(), [1.0, 0.5])
    out = evaluate_path(pivots, lambda th: {"loss": float(th.sum()), "err": float(th[1])}, num_between=1)
    np.testing.assert_allclose(out["loss"], [0, 0.5, 1, 1.5, 2])
    np.testing.assert_allclose(out["arc_length"], [0, 0.25, 0.5, 0.75, 1])
    assert out["is_pivot"].tolist() == [True, False, True, False, True]


# ---------------------------------------------------------------------------------------------- AutoNEB end to end
@pytest.fixture(scope="module")
def mb_points():
    minima = _refined(MULLER_BROWN, MULLER_BROWN.minima)
    saddles = _refined(MULLER_BROWN, MULLER_BROWN.saddles)
    return minima, saddles


def test_autoneb_recovers_the_muller_brown_saddle(mb_points):
    minima, saddles = mb_points
    (a, _), (b, _) = minima[0], minima[2]
    saddle_x, saddle_e = saddles[0]
    # MB gradients are ~100x a network's: the paper schedule's shape at small steps and lr × 5e-3
    sched = [(100, 5e-4)] * 3 + [(100, 5e-5)] * 2
    mep = auto_neb(MULLER_BROWN, torch.tensor(a), torch.tensor(b), sched, num_pivots=15)
    assert isinstance(mep, MEP) and len(mep.cycles) == 5
    assert mep.saddle_energy == pytest.approx(saddle_e, abs=0.1)  # barrier ≈ 106, so 0.1%
    assert np.linalg.norm(mep.saddle_point.numpy() - saddle_x) < 0.02
    assert 0 < mep.pivot_saddle_index < len(mep.pivots) - 1
    # the saddle is the dense path's maximum (an upper bound); the pivots' maximum is kept under its own name
    assert mep.saddle_energy == mep.dense_energies.max() >= mep.pivot_saddle_energy == mep.energies.max()
    assert mep.energies[mep.pivot_saddle_index] == mep.pivot_saddle_energy
    assert mep.barrier == pytest.approx(saddle_e - minima[2][1], abs=0.1)
    assert mep.barrier >= mep.pivot_barrier
    # the straight line is far worse: the relaxed path found the low pass
    line = [float(muller_brown(p)) for p in dense_path(torch.stack([torch.tensor(a), torch.tensor(b)]), 50)[0]]
    assert max(line) > saddle_e + 20


def test_autoneb_inserts_pivots_where_the_path_has_a_bump(mb_points):
    # A → C crosses two saddles and an intermediate minimum; 2 pivots cannot describe it
    minima, saddles = mb_points
    a, c = torch.tensor(minima[0][0]), torch.tensor(minima[1][0])
    mep = auto_neb(MULLER_BROWN, a, c, [(100, 5e-4)] * 3, num_pivots=2, insert_fraction=0.05)
    inserted = sum(cy["inserted"] for cy in mep.cycles)
    assert inserted > 0 and len(mep.pivots) == 4 + inserted
    assert mep.cycles[-1]["inserted"] == 0  # none after the last cycle
    assert [cy["num_pivots"] for cy in mep.cycles][0] == 4
    assert mep.saddle_energy < saddles[0][1] + 5  # close to the higher saddle
    capped = auto_neb(MULLER_BROWN, a, c, [(100, 5e-4)] * 3, num_pivots=2, insert_fraction=0.05, max_pivots=5)
    assert len(capped.pivots) <= 5


def test_dense_saddle_is_an_upper_bound_when_pivots_straddle_the_saddle():
    # double well with pivots at x = ±0.5 only: pivots miss the saddle (0, 0) at energy 1
    pivots = torch.tensor([[-1.0, 0.0], [-0.5, 0.0], [0.5, 0.0], [1.0, 0.0]], dtype=F64)
    e_piv = np.array([float(DOUBLE_WELL(p)) for p in pivots])
    e_bet = np.array([[float(DOUBLE_WELL(q)) for q in seg] for seg in between_points(pivots, 9)])
    mep = MEP(pivots=pivots, energies=e_piv, pivot_saddle_index=int(np.argmax(e_piv)), between_energies=e_bet)
    assert mep.pivot_saddle_energy == pytest.approx(0.5625) and mep.saddle_energy == pytest.approx(1.0)
    np.testing.assert_allclose(mep.saddle_point.numpy(), [0.0, 0.0], atol=1e-12)
    assert mep.barrier == pytest.approx(1.0) and mep.pivot_barrier == pytest.approx(0.5625)
    assert len(mep.dense_energies) == 3 * 10 + 1


@pytest.mark.parametrize("num_pivots", [1, 3])
def test_autoneb_defaults_insert_a_pivot_on_a_curved_valley_and_find_its_saddle(num_pivots):
    # the straight line between the minima runs at y = 0 through energy 11; the valley bends up to the
    # saddle (0, 1) at energy 1. Paper rule defaults: 9 between points, 20% of the pivots' energy range.
    a, b = (torch.tensor(m, dtype=F64) for m in CURVED_VALLEY.minima)
    x, e = refine_stationary_point(CURVED_VALLEY.fn, CURVED_VALLEY.saddles[0])
    assert morse_index(CURVED_VALLEY.fn, x) == 1 and e == pytest.approx(1.0)
    line_max = max(float(CURVED_VALLEY(p)) for p in dense_path(torch.stack([a, b]), 50)[0])
    assert line_max > 10
    mep = auto_neb(CURVED_VALLEY, a, b, paper_schedule(step_scale=0.05, lr_scale=0.1), num_pivots=num_pivots)
    assert sum(c["inserted"] for c in mep.cycles) >= 1 and len(mep.pivots) > num_pivots + 2
    assert mep.saddle_energy == pytest.approx(e, abs=0.02)
    assert np.linalg.norm(mep.saddle_point.numpy() - x) < 0.05
