"""Landscape exploration (Algorithm 3): which pairs get computed, the MST, the ultrametric bound, resume."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
import torch

from lsx.landscape.paths.explore import (
    LandscapeExploration,
    connect_with_autoneb,
    load_edges,
    load_pair,
    minimax_matrix,
    mst_edges,
    pair_path,
    suggest_pair,
)
from lsx.landscape.toy.potentials import MULLER_BROWN, refine_stationary_point

# Hand-made "true" path energies between 4 minima. Derivation of what Algorithm 3 computes:
#  star: (0,1)=3, (0,2)=4, (0,3)=5 → MST = star; highest edge (0,3) cuts {3} from {0,1,2}
#  candidates (1,3): rest of route M(0,1)=3; (2,3): M(0,2)=4 → (1,3) = 3.5 (replaces (0,3))
#  MST (0,1)=3, (1,3)=3.5, (0,2)=4; highest (0,2) cuts {2}: (1,2): M(0,1)=3, (2,3): M(0,3)=3.5 → (1,2) = 4.5
#  MST unchanged (4.5 > 4); highest still (0,2): only (2,3) left → (2,3) = 1
#  final MST (2,3)=1, (0,1)=3, (1,3)=3.5
TRUE = {(0, 1): 3.0, (0, 2): 4.0, (0, 3): 5.0, (1, 2): 4.5, (1, 3): 3.5, (2, 3): 1.0}
ORDER = [(0, 1), (0, 2), (0, 3), (1, 3), (1, 2), (2, 3)]


def _minima(n: int = 4, d: int = 3) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(d, generator=g, dtype=torch.float64) for _ in range(n)]


class Recorder:
    """connect() from a table; records calls and can fail after k calls (a killed job)."""

    def __init__(self, table, fail_after: int | None = None):
        self.table, self.fail_after, self.calls = table, fail_after, []

    def __call__(self, i, j):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt("killed")
        self.calls.append((i, j))
        e = self.table[(min(i, j), max(i, j))]
        pivots = np.stack([np.full(3, float(i)), np.full(3, (i + j) / 2), np.full(3, float(j))])
        return e, pivots


def _brute_minimax(n, table):
    """Minimax (bottleneck) energies over the complete graph by Floyd–Warshall."""
    m = np.full((n, n), np.inf)
    for (i, j), e in table.items():
        m[i, j] = m[j, i] = e
    for k in range(n):
        m = np.minimum(m, np.maximum(m[:, [k]], m[[k], :]))
    np.fill_diagonal(m, np.nan)
    return m


def test_algorithm_3_computes_the_expected_pairs_in_order(tmp_path):
    rec = Recorder(TRUE)
    ex = LandscapeExploration(_minima(), rec, tmp_path).run()
    assert rec.calls == ORDER
    assert ex.complete and ex.computed == ORDER
    assert ex.mst() == [(0, 1, 3.0), (1, 3, 3.5), (2, 3, 1.0)]


def test_budget_stops_early_and_the_tree_bound_holds(tmp_path):
    rec = Recorder(TRUE)
    ex = LandscapeExploration(_minima(), rec, tmp_path, max_connections=4).run()
    assert rec.calls == ORDER[:4] and not ex.complete
    m = ex.saddle_matrix()
    # bound through the tree: 0→2 is only known directly (4); 2→3 via 0: max(4, 3, 3.5) = 4
    assert m[2, 3] == 4.0 and m[1, 2] == 4.0 and m[0, 3] == 3.5
    assert m[2, 3] >= TRUE[(2, 3)]  # an upper bound of the truth


def test_saddle_matrix_is_ultrametric_and_below_every_direct_path(tmp_path):
    ex = LandscapeExploration(_minima(), Recorder(TRUE), tmp_path).run()
    m = ex.saddle_matrix()
    n = 4
    np.testing.assert_array_equal(m, m.T)
    for a, b, c in itertools.permutations(range(n), 3):
        assert m[a, c] <= max(m[a, b], m[b, c])
    for (i, j), e in TRUE.items():
        assert m[i, j] <= e
    assert m[0, 2] == 3.5 < TRUE[(0, 2)]  # the route 0-1-3-2 beats the direct path
    np.testing.assert_array_equal(m, _brute_minimax(n, TRUE))


def test_zero_and_negative_energies_give_the_same_exploration(tmp_path):
    shifted = {p: e - 4.0 for p, e in TRUE.items()}  # (0,2) becomes 0, several negative
    rec = Recorder(shifted)
    ex = LandscapeExploration(_minima(), rec, tmp_path).run()
    assert rec.calls == ORDER
    assert ex.mst() == [(0, 1, -1.0), (1, 3, -0.5), (2, 3, -3.0)]


def test_failed_paths_count_as_highest():
    edges = {(0, 1): 2.0, (0, 2): float("nan"), (1, 2): 5.0}
    assert mst_edges(3, edges) == [(0, 1, 2.0), (1, 2, 5.0)]
    m = minimax_matrix(3, [(0, 1, 2.0), (1, 2, float("nan"))])
    assert m[0, 1] == 2.0 and m[0, 2] == np.inf


def test_random_graph_full_exploration_matches_brute_force(tmp_path):
    rng = np.random.default_rng(0)
    n = 7
    table = {p: float(rng.normal()) for p in itertools.combinations(range(n), 2)}
    ex = LandscapeExploration(_minima(n), Recorder(table), tmp_path).run()
    assert ex.complete and len(ex.computed) == n * (n - 1) // 2
    np.testing.assert_allclose(ex.saddle_matrix(), _brute_minimax(n, table))
    assert suggest_pair(n, ex.edges) is None


def test_ties_prefer_lower_energy_minima():
    # after the star, cut {3}: (1,3) and (2,3) tie at rest-of-route 3 → minima energies decide
    edges = {(0, 1): 3.0, (0, 2): 3.0, (0, 3): 5.0}
    assert suggest_pair(4, edges) == (1, 3)
    assert suggest_pair(4, edges, minima_energies=[0.0, 0.5, 0.1, 0.0]) == (2, 3)


def test_resume_after_interruption_recomputes_nothing_and_matches(tmp_path):
    reference = LandscapeExploration(_minima(), Recorder(TRUE), tmp_path / "ref").run()

    first = Recorder(TRUE, fail_after=4)
    with pytest.raises(KeyboardInterrupt):
        LandscapeExploration(_minima(), first, tmp_path / "run").run()
    assert first.calls == ORDER[:4]
    assert set(load_edges(tmp_path / "run")) == set(ORDER[:4])
    assert not [f for f in os.listdir(tmp_path / "run") if f.endswith(".tmp")]

    second = Recorder(TRUE)
    resumed = LandscapeExploration(_minima(), second, tmp_path / "run").run()
    assert second.calls == ORDER[4:]  # nothing finished is recomputed
    assert resumed.edges == reference.edges
    assert resumed.mst() == reference.mst()
    np.testing.assert_array_equal(resumed.saddle_matrix(), reference.saddle_matrix())

    third = Recorder(TRUE)
    LandscapeExploration(_minima(), third, tmp_path / "run").run()
    assert third.calls == []


def test_saved_pair_holds_the_path(tmp_path):
    LandscapeExploration(_minima(), Recorder(TRUE), tmp_path, max_connections=1).run()
    d = load_pair(pair_path(tmp_path, (0, 1)))
    assert d["pair"] == (0, 1) and d["saddle_energy"] == 3.0
    np.testing.assert_allclose(d["pivots"][1], 0.5)


def test_directory_of_another_exploration_is_refused(tmp_path):
    LandscapeExploration(_minima(), Recorder(TRUE), tmp_path, max_connections=1).run()
    other = _minima()
    other[2] = other[2] + 1
    with pytest.raises(ValueError, match="another exploration"):
        LandscapeExploration(other, Recorder(TRUE), tmp_path)


def test_bad_minima_are_clear_errors(tmp_path):
    m = _minima()
    with pytest.raises(ValueError, match="at least two"):
        LandscapeExploration(m[:1], Recorder(TRUE), tmp_path)
    with pytest.raises(ValueError, match="architecture"):
        LandscapeExploration([m[0], torch.zeros(5, dtype=torch.float64)], Recorder(TRUE), tmp_path)
    with pytest.raises(ValueError, match="identical"):
        LandscapeExploration([m[0], m[1], m[0].clone()], Recorder(TRUE), tmp_path)
    with pytest.raises(ValueError, match="max_connections"):
        LandscapeExploration(m, Recorder(TRUE), tmp_path, max_connections=0)


def test_exploration_with_autoneb_on_muller_brown(tmp_path):
    minima = [torch.tensor(refine_stationary_point(MULLER_BROWN.fn, p)[0]) for p in MULLER_BROWN.minima]
    saddle_1, saddle_2 = (refine_stationary_point(MULLER_BROWN.fn, s)[1] for s in MULLER_BROWN.saddles)
    connect = connect_with_autoneb(minima, MULLER_BROWN, [(80, 5e-4)] * 2, num_pivots=8)
    ex = LandscapeExploration(minima, connect, tmp_path).run()
    assert ex.complete
    # A (0) and B (2) are joined over saddle 1; C (1) is reached from B over the lower saddle 2
    assert [e[:2] for e in ex.mst()] == [(0, 2), (1, 2)]
    m = ex.saddle_matrix()
    assert abs(m[0, 2] - saddle_1) < 0.5 and abs(m[1, 2] - saddle_2) < 0.5
    assert m[0, 1] == m[0, 2]
    d = load_pair(pair_path(tmp_path, (0, 1)))
    assert d["pivots"].shape == (10, 2) and len(d["cycles"]) == 2 and d["energies"].shape == (10,)
