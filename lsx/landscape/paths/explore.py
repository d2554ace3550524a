"""Energy landscape exploration over many minima (Draxler et al. 2018, Sec. 3.2, Algorithm 3).

Why a spanning tree: the lowest-barrier route between two minima may pass through other minima,
and L*_AC ≤ max(L_AB, L_BC) (an ultrametric bound). So not every pair needs its own path: with
the known path energies as edge weights, the minimum spanning tree (MST) gives, for every pair,
the best known route and its saddle — the maximum edge on the tree path between them. The
exploration first connects minimum 0 to all others, then repeatedly attacks the highest MST edge:
removing it cuts the tree in two, and a not-yet-computed pair across the cut is connected
directly; if its path is lighter, it replaces the edge in the MST.

Which pair across the cut: every cross pair's tree bound equals the removed edge (it lies on all
their tree paths), so pairs are ranked by the rest of their route — for a cross pair (a, b) and
the removed edge (u, v), priority = max(M(a, u), M(v, b)), M being the tree minimax energy: the
lowest the cut could be crossed through this pair if its direct path were free. Lowest first;
ties go to lower-energy minima (when given), then to the lower indices. When every pair across the
highest edge is known, the next-highest edge is attacked, and so on.

Resumable: each finished pair is one ``pair_IIII_JJJJ.npz`` in the directory, written atomically
(temp file + ``os.replace``); a new exploration on the same directory loads them and computes only
what is missing, so a killed run continues where it stopped and ends with the same result.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components, minimum_spanning_tree
from scipy.stats import rankdata

Pair = tuple[int, int]
ConnectFn = Callable[[int, int], tuple[float, Any]]

_PAIR_FILE = re.compile(r"^pair_(\d+)_(\d+)\.npz$")


def _pair(i: int, j: int) -> Pair:
    return (int(i), int(j)) if i < j else (int(j), int(i))


def check_minima(minima: Sequence[torch.Tensor]) -> None:
    """At least two flat minima of one size (one architecture), no two identical."""
    if minima is None or len(minima) < 2:
        raise ValueError(f"landscape exploration needs at least two minima, got {0 if minima is None else len(minima)}")
    sizes = [tuple(torch.as_tensor(m).shape) for m in minima]
    if any(len(s) != 1 for s in sizes):
        raise ValueError(f"minima must be flat parameter vectors (1-D), got shapes {sorted(set(sizes))}")
    if len(set(sizes)) != 1:
        raise ValueError(f"minima have different sizes {sorted({s[0] for s in sizes})}: they are not the same architecture")
    for i in range(len(minima)):
        for j in range(i + 1, len(minima)):
            if torch.equal(torch.as_tensor(minima[i]), torch.as_tensor(minima[j])):
                raise ValueError(f"minima {i} and {j} are identical; remove duplicates before exploring")


# ---------------------------------------------------------------------------------------------- graph logic
def _weights_for_mst(energies: np.ndarray) -> np.ndarray:
    """Dense ranks >= 1 (scipy's MST treats 0 as 'no edge' and any order-preserving map keeps the MST).

    Zero and negative energies are fine this way; non-finite ones (failed paths) rank above all.
    """
    finite = np.isfinite(energies)
    w = np.empty(len(energies))
    if finite.any():
        w[finite] = rankdata(energies[finite], method="dense")
    w[~finite] = (w[finite].max() if finite.any() else 0) + 1
    return w


def mst_edges(num_nodes: int, edges: dict[Pair, float]) -> list[tuple[int, int, float]]:
    """Minimum spanning tree (forest if disconnected) of the known path energies: (i, j, energy), i < j."""
    if not edges:
        return []
    pairs = sorted(edges)
    energies = np.array([edges[p] for p in pairs], dtype=np.float64)
    w = _weights_for_mst(energies)
    rows, cols = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    tree = minimum_spanning_tree(coo_matrix((w, (rows, cols)), shape=(num_nodes, num_nodes)).tocsr()).tocoo()
    out = [_pair(i, j) for i, j in zip(tree.row, tree.col)]
    return sorted((i, j, float(edges[(i, j)])) for i, j in out)


def minimax_matrix(num_nodes: int, tree: Sequence[tuple[int, int, float]], diagonal: float = np.nan) -> np.ndarray:
    """Saddle energy of the best route between every pair through the tree: the max edge on the tree path.

    Non-finite edges count as +inf; pairs in different components get +inf.
    """
    m = np.full((num_nodes, num_nodes), np.inf)
    if tree:
        rows = np.array([e[0] for e in tree] + [e[1] for e in tree])
        cols = np.array([e[1] for e in tree] + [e[0] for e in tree])
        energy = {}
        for i, j, e in tree:
            energy[(i, j)] = energy[(j, i)] = e if np.isfinite(e) else np.inf
        graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(num_nodes, num_nodes)).tocsr()
        for s in range(num_nodes):
            order, pred = breadth_first_order(graph, s, directed=False, return_predecessors=True)
            m[s, s] = -np.inf
            for v in order[1:]:
                m[s, v] = max(m[s, pred[v]], energy[(int(pred[v]), int(v))])
    np.fill_diagonal(m, diagonal)
    return m


def suggest_pair(
    num_nodes: int,
    edges: dict[Pair, float],
    minima_energies: Sequence[float] | None = None,
) -> Pair | None:
    """The next pair to connect (Algorithm 3), or None when every pair is known.

    First minimum 0 to every other one (in index order); then the cheapest-looking unknown pair across
    the highest MST edge that still has one (see the module docstring for the ranking).
    """
    for j in range(1, num_nodes):
        if (0, j) not in edges:
            return (0, j)
    tree = mst_edges(num_nodes, edges)
    m = minimax_matrix(num_nodes, tree, diagonal=-np.inf)
    e_min = np.zeros(num_nodes) if minima_energies is None else np.asarray(minima_energies, dtype=np.float64)
    rank = _weights_for_mst(np.array([e for _, _, e in tree]))
    by_height = sorted(range(len(tree)), key=lambda k: (-rank[k], tree[k][:2]))
    for k in by_height:
        u, v, _ = tree[k]
        rest = [(a, b) for a, b, _ in tree if (a, b) != (u, v)]
        adj = coo_matrix((np.ones(len(rest)), ([a for a, _ in rest], [b for _, b in rest])), shape=(num_nodes, num_nodes))
        _, label = connected_components(adj, directed=False)
        side_u = [x for x in range(num_nodes) if label[x] == label[u]]
        side_v = [x for x in range(num_nodes) if label[x] == label[v]]
        candidates = []
        for a in side_u:
            for b in side_v:
                p = _pair(a, b)
                if p not in edges:
                    priority = max(m[a, u], m[b, v])
                    candidates.append((priority, e_min[a] + e_min[b], p))
        if candidates:
            return min(candidates)[2]
    return None


# ---------------------------------------------------------------------------------------------- storage
def pair_path(directory: str | Path, pair: Pair) -> Path:
    return Path(directory) / f"pair_{pair[0]:04d}_{pair[1]:04d}.npz"


def save_pair(directory: str | Path, pair: Pair, saddle_energy: float, path: Any = None) -> Path:
    """One finished connection: its saddle energy and, when given, the path's pivots/energies (atomic write).

    ``path`` may be an object with ``pivots`` (and optionally ``energies`` / ``cycles``), a tensor or
    array of pivots, or None.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"pair": np.array(pair), "saddle_energy": np.array(float(saddle_energy))}
    pivots = getattr(path, "pivots", path)
    if pivots is not None:
        data["pivots"] = pivots.detach().cpu().numpy() if isinstance(pivots, torch.Tensor) else np.asarray(pivots)
    if getattr(path, "energies", None) is not None:
        data["energies"] = np.asarray(path.energies, dtype=np.float64)
    if getattr(path, "cycles", None) is not None:
        data["cycles_json"] = np.array(json.dumps(path.cycles, default=str))
    from lsx.utils.io import atomic_savez  # temp file + rename, with the umask's permissions

    target = pair_path(directory, pair)
    atomic_savez(target, **data)
    return target


def load_pair(file: str | Path) -> dict[str, Any]:
    with np.load(file, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    out["pair"] = tuple(int(x) for x in out["pair"])
    out["saddle_energy"] = float(out["saddle_energy"])
    if "cycles_json" in out:
        out["cycles"] = json.loads(str(out.pop("cycles_json")))
    return out


def load_edges(directory: str | Path) -> dict[Pair, float]:
    """Saddle energies of all finished pairs in a directory (temp files of interrupted writes are ignored)."""
    directory = Path(directory)
    edges: dict[Pair, float] = {}
    if directory.is_dir():
        for f in sorted(directory.iterdir()):
            if _PAIR_FILE.match(f.name):
                d = load_pair(f)
                edges[_pair(*d["pair"])] = d["saddle_energy"]
    return edges


def minima_fingerprint(minima: Sequence[torch.Tensor]) -> str:
    h = hashlib.sha256()
    for m in minima:
        h.update(torch.as_tensor(m).detach().cpu().to(torch.float64).numpy().tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------- exploration
class LandscapeExploration:
    """Algorithm 3 with its state on disk: construct, ``run()``, kill at will, construct again, ``run()``.

    ``connect(i, j) -> (saddle_energy, path)`` computes one pair (e.g. :func:`connect_with_autoneb`).
    ``max_connections`` bounds the number of known pairs in the directory (loaded ones included), so
    a resumed run with the same budget stops where an uninterrupted one would.
    """

    META = "exploration.json"

    def __init__(
        self,
        minima: Sequence[torch.Tensor],
        connect: ConnectFn,
        directory: str | Path,
        max_connections: int | None = None,
        minima_energies: Sequence[float] | None = None,
    ) -> None:
        check_minima(minima)
        self.num_minima = len(minima)
        if max_connections is not None and max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        if minima_energies is not None and len(minima_energies) != self.num_minima:
            raise ValueError(f"{len(minima_energies)} minima energies for {self.num_minima} minima")
        self.connect = connect
        self.directory = Path(directory)
        self.max_connections = max_connections
        self.minima_energies = None if minima_energies is None else [float(e) for e in minima_energies]
        self._check_meta(minima)
        self.edges = load_edges(self.directory)
        bad = [p for p in self.edges if not (0 <= p[0] < p[1] < self.num_minima)]
        if bad:
            raise ValueError(f"{self.directory} holds pairs {bad} outside the {self.num_minima} minima")
        self.computed: list[Pair] = []  # pairs computed by this object (not loaded)

    def _check_meta(self, minima: Sequence[torch.Tensor]) -> None:
        meta = {
            "num_minima": self.num_minima,
            "num_params": int(torch.as_tensor(minima[0]).numel()),
            "fingerprint": minima_fingerprint(minima),
        }
        file = self.directory / self.META
        if file.exists():
            old = json.loads(file.read_text())
            if old != meta:
                raise ValueError(
                    f"{self.directory} belongs to another exploration (other minima: {old.get('num_minima')} minima of "
                    f"{old.get('num_params')} parameters); use a new directory"
                )
            return
        from lsx.utils.io import atomic_write_text  # temp file + rename, with the umask's permissions

        atomic_write_text(file, json.dumps(meta))

    @property
    def budget_spent(self) -> bool:
        return self.max_connections is not None and len(self.edges) >= self.max_connections

    @property
    def complete(self) -> bool:
        return len(self.edges) == self.num_minima * (self.num_minima - 1) // 2

    def next_pair(self) -> Pair | None:
        if self.budget_spent:
            return None
        return suggest_pair(self.num_minima, self.edges, self.minima_energies)

    def step(self) -> Pair | None:
        """Compute and save one pair; returns it, or None when finished."""
        pair = self.next_pair()
        if pair is None:
            return None
        saddle, path = self.connect(*pair)
        save_pair(self.directory, pair, saddle, path)
        self.edges[pair] = float(saddle)
        self.computed.append(pair)
        return pair

    def run(self) -> "LandscapeExploration":
        while self.step() is not None:
            pass
        return self

    def mst(self) -> list[tuple[int, int, float]]:
        return mst_edges(self.num_minima, self.edges)

    def saddle_matrix(self) -> np.ndarray:
        """Best known saddle energy between every pair (minimax through the MST; NaN diagonal)."""
        return minimax_matrix(self.num_minima, self.mst())

    def summary(self) -> dict[str, Any]:
        return {
            "num_minima": self.num_minima,
            "known_pairs": len(self.edges),
            "all_pairs": self.num_minima * (self.num_minima - 1) // 2,
            "complete": self.complete,
            "mst": [list(e) for e in self.mst()],
            "computed_this_run": [list(p) for p in self.computed],
        }


def connect_with_autoneb(minima: Sequence[torch.Tensor], loss_fn, schedule, **autoneb_kwargs) -> ConnectFn:
    """A ``connect(i, j)`` that runs AutoNEB between minima i and j and returns (path energy, MEP).

    The energy is the max over the pivots *and* the points between them (``MEP.saddle_energy``):
    the highest loss actually met along the stored piecewise linear path, so the tree's bounds hold for
    paths one can walk; the pivots' max alone underestimates it when pivots straddle the saddle.
    """
    from .autoneb import auto_neb

    def connect(i: int, j: int):
        mep = auto_neb(loss_fn, minima[i], minima[j], schedule, **autoneb_kwargs)
        return mep.saddle_energy, mep

    return connect
