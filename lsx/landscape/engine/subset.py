"""Parameter subsets: which named parameters an analysis moves (directions) or differentiates (Hessian blocks).

Why: a per-layer surface, an adapter-only Hessian or a per-block curvature table is the same analysis on a part of
the model. A subset is chosen by ``fnmatch`` globs on ``named_parameters()`` names (include, then exclude); a tied
weight is one tensor of the flat layout, selected when any of its names is included and none excluded, and counted
once. Directions are zero outside the subset (filter normalization within it is unchanged, since it is per tensor),
and the Hessian of the loss restricted to the subset, θ_S ↦ L(θ with θ_S replaced), is exactly the block H[S, S].
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import torch

from .flat import FlatParams

ALL = ("*",)


def glob_list(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, (list, tuple)) or not all(isinstance(g, str) and g for g in value):
        raise ValueError(f"{key} must be a list of glob strings (e.g. ['layer1.*', '*.weight']), got {value!r}")
    return tuple(value)


def is_everything(include: Any = None, exclude: Any = None) -> bool:
    """Whether the globs select every parameter whatever the model (the default: no subset)."""
    inc, exc = glob_list(include, "include"), glob_list(exclude, "exclude")
    return (not inc or "*" in inc) and not exc


def aliases(flat: FlatParams) -> dict[str, tuple[str, ...]]:
    """Entry name → every name of that tensor in the model (a tied weight has several; the flat layout keeps one)."""
    by_id: dict[int, list[str]] = {}
    for name, p in flat.model.named_parameters(remove_duplicate=False):
        by_id.setdefault(id(p), []).append(name)
    canonical = {names[0]: tuple(names) for names in by_id.values()}
    return {e.name: canonical.get(e.name, (e.name,)) for e in flat.entries}


def _matches(names: Iterable[str], globs: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(n, g) for n in names for g in globs)


@dataclass(frozen=True)
class ParamSubset:
    """The selected part of a flat layout: ``mask`` over the layout (parameters and matched BN buffers)."""

    include: tuple[str, ...]
    exclude: tuple[str, ...]
    names: tuple[str, ...]  # selected parameter tensors, in layout order (a tied weight once, by its first name)
    mask: torch.Tensor  # bool, flat.numel
    num_params: int  # selected parameter scalars
    total_params: int  # every parameter scalar of the layout

    @property
    def index(self) -> torch.Tensor:
        """Flat indices of the selected parameter scalars (buffers excluded): the coordinates of θ_S."""
        return torch.nonzero(self.mask[: self.total_params], as_tuple=False).reshape(-1)

    def restrict(self, direction: torch.Tensor) -> torch.Tensor:
        """``direction`` with every entry outside the subset set to zero."""
        if direction.shape[-1] != self.mask.numel():
            raise ValueError(f"direction of size {direction.shape[-1]} does not match the subset's layout {self.mask.numel()}")
        return direction * self.mask.to(direction.dtype)

    def record(self) -> dict[str, Any]:
        """What results.json records: the globs, the selected tensors and how many scalars they hold."""
        return {
            "include": list(self.include),
            "exclude": list(self.exclude),
            "names": list(self.names),
            "num_tensors": len(self.names),
            "num_params": self.num_params,
            "num_params_total": self.total_params,
        }


def select_params(flat: FlatParams, include: Any = None, exclude: Any = None, key: str = "analysis.params") -> ParamSubset:
    """The parameters of ``flat`` matched by ``include`` (None or empty: all) and by none of ``exclude``.

    A BN running-statistics buffer in the layout (``bn: states``) follows the same globs. Globs that leave no
    parameter raise one line naming them and a few valid names.
    """
    inc = glob_list(include, f"{key}.include") or ALL
    exc = glob_list(exclude, f"{key}.exclude")
    names_of = aliases(flat)
    mask = torch.zeros(flat.numel, dtype=torch.bool, device=flat.device)
    chosen: list[str] = []
    count = 0
    for e in flat.entries:
        names = names_of.get(e.name, (e.name,))
        if _matches(names, inc) and not _matches(names, exc):
            mask[e.start : e.stop] = True
            if e.kind != "buffer":
                chosen.append(e.name)
                count += e.numel
    if not chosen:
        valid = [e.name for e in flat.entries if e.kind != "buffer"]
        shown = ", ".join(valid[:6]) + (f", ... ({len(valid)} in all)" if len(valid) > 6 else "")
        raise ValueError(
            f"{key}: include={list(inc)} exclude={list(exc)} select no parameter; valid names (fnmatch globs on "
            f"named_parameters()): {shown}"
        )
    return ParamSubset(inc, exc, tuple(chosen), mask, count, flat.num_params)


def subset_loss(
    loss_fn: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, index: torch.Tensor
) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]:
    """(f_S, θ_S): the loss as a function of the selected coordinates only, the others held at θ.

    Its Hessian at θ_S is the block H[S, S] of the full Hessian (a product with v on S, projected back to S),
    so every Hessian routine of :mod:`lsx.landscape.curvature.hessian` applies to it unchanged.
    """
    base = theta.detach()
    idx = index.to(base.device)

    def f(theta_s: torch.Tensor) -> torch.Tensor:
        return loss_fn(base.index_put((idx,), theta_s))

    return f, base[idx].clone()


_DEPTH = re.compile(r"depth([1-9][0-9]*)$")


def check_blocks(spec: Any, key: str = "analysis.blocks") -> None:
    """``spec`` is ``depth<N>`` or a non-empty list of globs (one line otherwise)."""
    if isinstance(spec, str) and _DEPTH.match(spec):
        return
    if isinstance(spec, (list, tuple)) and spec and all(isinstance(g, str) and g for g in spec):
        return
    raise ValueError(
        f"{key}={spec!r}; valid: depth<N> (blocks = modules N levels down, e.g. depth1: top-level children) "
        "or a list of globs, one block each (e.g. ['layer1.*', 'layer2.*'])"
    )


def param_blocks(
    flat: FlatParams, spec: Any, subset: ParamSubset | None = None, key: str = "analysis.blocks"
) -> dict[str, list[str]]:
    """Block name → parameter names (layout order), partitioning the selected parameters.

    ``depth<N>``: a parameter's block is the first N components of its module path (``depth1``: the model's
    top-level child; a parameter of a shallower module is its own module's block). A list of globs: one block per
    glob, named by it; a parameter goes to the first glob matching any of its names, and one matched by none is
    left out (the table says how many scalars that leaves). A glob matching no selected parameter: one line.
    """
    check_blocks(spec, key)
    names_of = aliases(flat)
    params = [e for e in flat.entries if e.kind != "buffer" and (subset is None or e.name in subset.names)]
    blocks: dict[str, list[str]] = {}
    if isinstance(spec, str):
        m = _DEPTH.match(spec)
        assert m is not None  # check_blocks
        depth = int(m.group(1))
        for e in params:
            module = e.name.split(".")[:-1]
            blocks.setdefault(".".join(module[:depth]) or "(root)", []).append(e.name)
        return blocks
    blocks = {g: [] for g in spec}
    for e in params:
        for g in spec:
            if _matches(names_of.get(e.name, (e.name,)), (g,)):
                blocks[g].append(e.name)
                break
    empty = [g for g, names in blocks.items() if not names]
    if empty:
        shown = ", ".join(e.name for e in params[:6]) + (f", ... ({len(params)} in all)" if len(params) > 6 else "")
        raise ValueError(f"{key}: glob(s) {empty} match no {'selected ' if subset else ''}parameter; valid names: {shown}")
    return blocks


def block_index(flat: FlatParams, names: Sequence[str]) -> torch.Tensor:
    """Flat indices of the named parameter tensors (layout order)."""
    wanted = set(names)
    parts = [torch.arange(e.start, e.stop) for e in flat.entries if e.name in wanted]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)
