"""One entry point for aligning optima before any path analysis (``analysis.align``).

``align_models(models, method, inputs)`` permutes ``models[1:]`` in place so each matches ``models[0]``
unit for unit: ``none`` leaves them, ``weight`` uses weight matching, ``activation`` activation
matching on ``inputs``. Every model computes the same function afterwards; only the straight lines
between them change. Jobs call it right after loading their optima (interpolation, connector, plane,
autoneb), so "does the barrier / connector length shrink after alignment?" is one override away.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence, Union

import torch
from torch import nn

from .activation_matching import activation_matching, activation_matching_timed
from .apply import Perms, permute_state
from .modes import check_align
from .spec import PermutationSpec, derive_spec
from .weight_matching import weight_matching

Inputs = Union[torch.Tensor, Callable[[], torch.Tensor]]


def check_same_states(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], what: str = "the two optima") -> None:
    """One line naming the first difference when two states cannot belong to one architecture."""
    if set(a) != set(b):
        diff = sorted(set(a) ^ set(b))
        raise ValueError(f"{what} have different architectures: tensors {diff[:3]} are in only one of them")
    for k in a:
        if a[k].shape != b[k].shape:
            raise ValueError(f"{what} differ in shape at {k}: {tuple(a[k].shape)} vs {tuple(b[k].shape)}")


def match(
    spec: PermutationSpec,
    model_a: nn.Module,
    model_b: nn.Module,
    method: str,
    inputs: torch.Tensor | None = None,
    seed: int = 0,
    max_iter: int = 100,
) -> Perms:
    """The permutations that align b to a by ``method`` (``weight`` or ``activation``)."""
    if method == "weight":
        return weight_matching(spec, model_a.state_dict(), model_b.state_dict(), max_iter=max_iter, seed=seed)
    if method == "activation":
        if inputs is None:
            raise ValueError("activation matching needs inputs (a fixed data subset)")
        return activation_matching(spec, model_a, model_b, inputs)
    raise ValueError(f"alignment method {method!r}; valid: weight, activation")


def align_models(models: Sequence[nn.Module], method: Any, inputs: Inputs | None = None, seed: int = 0) -> dict[str, Any]:
    """Permute ``models[1:]`` in place to match ``models[0]``; returns {method, seconds per model}.

    Activation matching runs every model once (``models[0]``'s pass serves all its pairs), so a model's
    seconds are an even share of the whole."""
    method = check_align(method)
    if method == "none" or len(models) < 2:
        return {"align": method, "align_seconds": []}
    ref = models[0]
    for m in models[1:]:
        check_same_states(ref.state_dict(), m.state_dict())
    x = inputs() if callable(inputs) else inputs
    if x is None:
        raise ValueError(f"analysis.align={method} needs example inputs to trace the model")
    spec = derive_spec(ref, x[:2])
    seconds = []
    if method == "activation":  # one forward pass of every model (the reference's is shared): time split evenly
        found = activation_matching_timed(spec, models, [(0, i) for i in range(1, len(models))], x)
        for i, m in enumerate(models[1:], 1):
            perms, share = found[(0, i)]
            m.load_state_dict(permute_state(m.state_dict(), spec, perms))
            seconds.append(share)
        return {"align": method, "align_seconds": seconds}
    for m in models[1:]:
        t0 = time.perf_counter()
        perms = match(spec, ref, m, method, x, seed=seed)
        m.load_state_dict(permute_state(m.state_dict(), spec, perms))
        seconds.append(time.perf_counter() - t0)
    return {"align": method, "align_seconds": seconds}


def align_checkpoints(ckpts: Sequence[Any], method: Any, inputs: Inputs | None = None, seed: int = 0) -> list[Any]:
    """Checkpoints (anything with ``build_model()`` and a ``state_dict`` field) with ``ckpts[1:]``
    permuted to match ``ckpts[0]``: the same objects for ``none``, aligned copies otherwise.

    Why checkpoints: a job that rebuilds models from its checkpoints later (BN re-estimation,
    weight norms) sees the aligned weights everywhere with one call at the top."""
    import dataclasses

    if check_align(method) == "none" or len(ckpts) < 2:
        return list(ckpts)
    models = [c.build_model() for c in ckpts]
    align_models(models, method, inputs, seed)
    return [ckpts[0]] + [
        dataclasses.replace(c, state_dict={k: v.detach().clone() for k, v in m.state_dict().items()})
        for c, m in zip(ckpts[1:], models[1:])
    ]
