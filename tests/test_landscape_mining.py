"""Mining algorithms on toy landscapes where the intended curve shape exists."""

import math

import numpy as np
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


def _double_well(t):
    return (t[1] ** 2 - 1) ** 2 + (t[0] ** 2 + (t[2:] ** 2).sum())


def test_algorithm1_takes_the_papers_plain_step():
    # Algo. 1, line 6: ε ← ε − ηλ∇L(θ + λε); from ε₀ = 0 one step is −ηλ∇L(θ) with the λ it drew
    from lsx.landscape.surfaces.mining import mine_w_peak_paper

    theta = torch.tensor([0.3, 0.5, -0.2, 0.1, 0.0, 0.4], dtype=torch.float64)
    res = mine_w_peak_paper(_double_well, theta, alpha=1.0, epochs=1, steps_per_epoch=1, lr=0.1, seed=3, num=5)
    lam = float(2 * torch.rand(1, generator=torch.Generator().manual_seed(3), dtype=torch.float64)[0] - 1)
    t = theta.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(_double_well(t), t)
    assert torch.allclose(res.direction, -0.1 * lam * g)
    adam = mine_w_peak_paper(_double_well, theta, alpha=1.0, epochs=1, steps_per_epoch=1, lr=0.1, seed=3, num=5, optimizer="adam")
    assert not torch.allclose(adam.direction, res.direction)  # the named option is another update


def test_algorithm1_as_written_finds_the_double_well_axis():
    # θ slightly off the peak of (y² − 1)²: from ε₀ = 0 the plain steps grow ε along y (negative curvature)
    # and shrink the x directions; E_λ~U[−1,1] ((λε)² − 1)² is smallest at ε² = E[λ²]/E[λ⁴] = 5/3
    from lsx.landscape.surfaces.mining import mine_w_peak_paper

    theta = torch.tensor([0.02, 0.05, 0.01, -0.01, 0.0, 0.03], dtype=torch.float64)
    res = mine_w_peak_paper(_double_well, theta, alpha=1.0, epochs=50, steps_per_epoch=40, lr=0.02, seed=0)
    assert res.type_after == "w-peak" and res.norms[0] < 0.2 < res.norms[-1]
    d = res.direction
    assert abs(float(d[1])) / float(d.norm()) > 0.99
    assert abs(float(d[1])) == pytest.approx(math.sqrt(5 / 3), rel=0.1)
    with pytest.raises(ValueError, match="optimizer"):
        mine_w_peak_paper(_double_well, theta, optimizer="lbfgs")
    with pytest.raises(ValueError, match="epochs"):
        mine_w_peak_paper(_double_well, theta, epochs=0)


def _eq3_optimum(a, theta, alpha, gamma):
    """argmin_φ E_λ[½‖φ−a‖² + γ½‖(1−λ)θ + λφ − a‖²], λ ~ U[0.5−α, 0.5+α] (set the gradient to zero)."""
    m1, m2 = 0.5, 0.25 + alpha**2 / 3
    return (a * (1 + gamma * m1) - gamma * (m1 - m2) * theta) / (1 + gamma * m2)


@pytest.mark.parametrize("alpha, gamma", [(0.0, 0.1), (0.0, 0.9), (0.1, 0.5)])
def test_algorithm2_reaches_eq3s_optimum_on_a_quadratic(alpha, gamma):
    from lsx.landscape.surfaces.mining import mine_vvv_basin_paper

    a = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    theta = torch.tensor([-1.0, 1.0, 3.0], dtype=torch.float64)

    def f(t):
        return 0.5 * ((t - a) ** 2).sum()

    res = mine_vvv_basin_paper(
        f,
        theta,
        torch.zeros(3, dtype=torch.float64),
        alpha=alpha,
        gamma=gamma,
        epochs=40,
        steps_per_epoch=25,
        lr=0.05,
        samples=4 if alpha else 1,
        seed=0,
    )
    want = _eq3_optimum(a, theta, alpha, gamma) - theta  # ε = φ − θ
    assert torch.allclose(res.direction, want, atol=0.02 if alpha else 1e-6)
    assert not torch.allclose(want, a - theta, atol=0.05)  # γ moved the optimum off L's own minimum


def test_algorithm2_takes_the_papers_step_and_draws_theta_and_phi():
    # Algo. 2, line 5: φ ← φ − η(∇_φL(φ) + γλ∇L(φ̂)), φ̂ = (1−λ)θ + λφ
    from lsx.landscape.surfaces.mining import mine_vvv_basin_paper

    theta = torch.tensor([0.3, -0.4, 0.2, 0.1, 0.0, 0.4], dtype=torch.float64)
    phi0 = torch.tensor([1.0, 0.2, -0.3, 0.5, 0.1, 0.0], dtype=torch.float64)
    res = mine_vvv_basin_paper(_double_well, theta, phi0, alpha=0.1, gamma=0.5, epochs=1, steps_per_epoch=1, lr=0.1, seed=1)
    lam = 0.5 + 0.1 * float(2 * torch.rand(1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)[0] - 1)

    def grad(x):
        x = x.clone().requires_grad_(True)
        return torch.autograd.grad(_double_well(x), x)[0]

    phi1 = phi0 - 0.1 * (grad(phi0) + 0.5 * lam * grad((1 - lam) * theta + lam * phi0))
    assert torch.allclose(res.direction, phi1 - theta)
    assert res.lams[0] == -1.0 and res.lams[-1] == 2.0 and np.isclose(res.lams, 0).any() and np.isclose(res.lams, 1).any()
    with pytest.raises(ValueError, match="alpha"):
        mine_vvv_basin_paper(_double_well, theta, phi0, alpha=0.7)
    with pytest.raises(ValueError, match="window"):
        mine_vvv_basin_paper(_double_well, theta, phi0, window=(-1.0, 0.5))


def test_algorithm2_mines_a_vvv_basin_where_the_midpoint_can_be_lowered():
    # periodic basins along y (period 1): θ = 0 and a φ started at a crest-free point far along y; the γ term
    # pulls the midpoint into a basin too, so θ, the midpoint and φ each sit in one (three basins)
    from lsx.landscape.surfaces.mining import mine_vvv_basin_paper

    def f(t):
        return torch.sin(math.pi * t[1]) ** 2 + 0.5 * (t[0] ** 2 + (t[2:] ** 2).sum())

    theta = torch.zeros(4, dtype=torch.float64)
    phi0 = torch.tensor([0.3, 1.7, 0.2, -0.2], dtype=torch.float64)
    res = mine_vvv_basin_paper(f, theta, phi0, alpha=0.0, gamma=0.5, epochs=20, steps_per_epoch=20, lr=0.05, seed=0)
    assert res.type_after == "vvv-basin"
    assert float(res.direction[1]) == pytest.approx(2.0, abs=0.05)


def test_both_algorithms_take_one_step_per_data_batch():
    # "for each batch": with two batch losses an epoch is two steps, each on its own batch's gradient
    from lsx.landscape.surfaces.mining import mine_vvv_basin_paper, mine_w_peak_paper

    a = [torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64), torch.tensor([-1.0, 3.0, 0.0], dtype=torch.float64)]
    batches = [lambda t, c=c: 0.5 * ((t - c) ** 2).sum() for c in a]

    def full(t):
        return 0.5 * (batches[0](t) + batches[1](t))

    theta = torch.tensor([0.5, 0.5, 0.5], dtype=torch.float64)
    res = mine_w_peak_paper(full, theta, epochs=1, lr=0.1, seed=2, num=5, batch_losses=batches)
    lams = (2 * torch.rand(2, generator=torch.Generator().manual_seed(2), dtype=torch.float64) - 1).tolist()
    eps = torch.zeros(3, dtype=torch.float64)
    for lam, c in zip(lams, a):  # ∇L_b(θ + λε) = θ + λε − c_b
        eps = eps - 0.1 * lam * (theta + lam * eps - c)
    assert torch.allclose(res.direction, eps) and len(res.objective) == 2
    res = mine_vvv_basin_paper(full, theta, torch.zeros(3, dtype=torch.float64), epochs=3, lr=0.1, batch_losses=batches)
    assert len(res.objective) == 6
    with pytest.raises(ValueError, match="empty"):
        mine_w_peak_paper(full, theta, batch_losses=[])
