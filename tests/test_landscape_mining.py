"""Mining algorithms on toy landscapes where the intended curve shape exists."""
import math

import pytest
import torch

from lsx.landscape.surfaces.mining import mine_vvv_basin, mine_w_peak


def test_w_peak_mining_turns_towards_the_double_well_axis():
    # L(x, y, z...) = (y² − 1)² + Σ x_i²: θ = 0 is a peak between the basins y = ±1 along y only
    def f(t):
        return (t[1] ** 2 - 1) ** 2 + (t[0] ** 2 + (t[2:] ** 2).sum())

    theta = torch.zeros(6, dtype=torch.float64)
    init = torch.tensor([1.0, 0.3, 0.5, -0.4, 0.2, 0.1], dtype=torch.float64)
    init = init / init.norm() * 1.2
    res = mine_w_peak(f, theta, init, scale=1.2, steps=300, lr=0.2, seed=0)
    assert res.type_before != "w-peak" and res.type_after == "w-peak"
    assert abs(float(res.direction[1])) / float(res.direction.norm()) > 0.9


def test_vvv_basin_mining_finds_periodic_basins():
    def f(t):
        return torch.sin(math.pi * t[1]) ** 2 + 3.0 * (t[0] ** 2 + (t[2:] ** 2).sum())  # basins only along y

    theta = torch.zeros(5, dtype=torch.float64)
    # partly aligned start: the steep other directions hide the basins (the curve is one v-basin)
    init = torch.tensor([0.5, 0.7, -0.3, 0.3, 0.2], dtype=torch.float64)
    init = init / init.norm()
    res = mine_vvv_basin(f, theta, init, gamma=1.0, k=2, steps=300, lr=0.2, seed=0, num=61)
    assert res.type_before == "v-basin" and res.type_after == "vvv-basin"
    with pytest.raises(ValueError, match="gamma"):
        mine_vvv_basin(f, theta, init, gamma=0.0)


def test_vvv_basin_mining_needs_the_barrier_term_when_a_flat_valley_competes():
    # x is a perfectly flat valley, y has periodic basins: lowering the lattice points alone is
    # happy with the flat valley (no barriers, not vvv); the barrier term turns the direction to y
    def f(t):
        return torch.sin(math.pi * t[1]) ** 2 + 3.0 * (t[2:] ** 2).sum()

    theta = torch.zeros(4, dtype=torch.float64)
    init = torch.tensor([0.9, 0.2, 0.1, -0.1], dtype=torch.float64)
    init = init / init.norm()
    plain = mine_vvv_basin(f, theta, init, gamma=1.0, k=2, beta=0.0, seed=0, num=61)
    walls = mine_vvv_basin(f, theta, init, gamma=1.0, k=2, barrier=0.5, beta=10.0, seed=0, num=61)
    assert plain.type_after != "vvv-basin" and abs(float(plain.direction[0])) > 0.99
    assert walls.type_after == "vvv-basin"
    assert abs(float(walls.direction[1])) > 0.4  # turned from 0.2 towards the periodic axis
    with pytest.raises(ValueError, match="barrier"):
        mine_vvv_basin(f, theta, init, barrier=-1.0)


def test_algorithm1_as_written_starts_at_zero_and_finds_the_double_well_axis():
    # θ slightly off the peak of (y² − 1)² (a trained net's gradient is never exactly 0): from ε₀ = 0 the
    # free-norm ε grows along y, where the curvature is negative, and the x directions shrink
    from lsx.landscape.surfaces.mining import mine_w_peak_paper

    def f(t):
        return (t[1] ** 2 - 1) ** 2 + (t[0] ** 2 + (t[2:] ** 2).sum())

    theta = torch.tensor([0.02, 0.05, 0.01, -0.01, 0.0, 0.03], dtype=torch.float64)
    res = mine_w_peak_paper(f, theta, alpha=1.0, steps=300, lr=0.05, seed=0)
    assert res.type_after == "w-peak" and res.norms[0] < 0.2 < res.norms[-1]  # Adam: one lr per coordinate
    d = res.direction
    assert abs(float(d[1])) / float(d.norm()) > 0.99
    # E_λ~U[−1,1] ((λε)² − 1)² is smallest at ε² = E[λ²]/E[λ⁴] = 5/3: the norm is free and finds it
    assert abs(float(d[1])) == pytest.approx(math.sqrt(5 / 3), rel=0.1)
    with pytest.raises(ValueError, match="optimizer"):
        mine_w_peak_paper(f, theta, optimizer="lbfgs")


def test_algorithm2_as_written_samples_the_lattice_inside_the_growing_window():
    from lsx.landscape.surfaces.mining import lattice_offsets, mine_vvv_basin_paper

    draw = lattice_offsets(200, 0.5)
    gen = torch.Generator().manual_seed(0)
    assert draw(0.4, gen).numel() == 0  # no lattice point inside [−0.4, 0.4]
    assert set(draw(1.2, gen).tolist()) == {-1.0, -0.5, 0.5, 1.0}

    def f(t):  # periodic basins along y; θ near a crest so that ε leaves 0
        return torch.cos(math.pi * t[1]) ** 2 + 3.0 * (t[0] ** 2 + (t[2:] ** 2).sum())

    theta = torch.tensor([0.0, 0.01, 0.0, 0.0, 0.0], dtype=torch.float64)
    res = mine_vvv_basin_paper(f, theta, alpha=1.0, gamma=0.5, steps=300, lr=0.5, optimizer="sgd", seed=0)
    assert res.type_after == "vvv-basin" and abs(float(res.direction[1])) > 1.0
    with pytest.raises(ValueError, match="gamma"):
        mine_vvv_basin_paper(f, theta, alpha=0.4, gamma=0.5)
