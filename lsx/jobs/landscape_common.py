"""Glue between jobs and the landscape engine: checkpoints → model + flat view → evaluated grid.

Kept in one place so every landscape job (surfaces, curves, planes, PCA, connectors, ...)
evaluates points the same way: the fixed landscape subset, the configured BN policy, the
resumable HDF5 store and a progress bar.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from omegaconf import OmegaConf

from lsx.landscape.engine.flat import FlatParams
from lsx.landscape.engine.subset import ParamSubset
from lsx.training.checkpoints import Checkpoint, check_same_architecture

from .base import JobContext, hashed_analysis


@dataclass
class Point:
    """A trained model as the landscape sees it."""

    checkpoint: Checkpoint
    model: torch.nn.Module
    flat: FlatParams
    theta: torch.Tensor
    label: str


def load_point(ckpt: Checkpoint, bn: str = "keep", label: str = "") -> Point:
    model = ckpt.build_model()
    flat = FlatParams(model, include_buffers=(bn == "states"))
    return Point(ckpt, model, flat, flat.get(), label or f"{ckpt.model_name} seed {ckpt.config.get('seed')} epoch {ckpt.epoch}")


def param_subset(ctx: JobContext, flat: FlatParams) -> ParamSubset | None:
    """``analysis.params`` on this flat layout, recorded for results.json; None when it selects every parameter
    (the full-model path, unchanged)."""
    from lsx.landscape.engine.subset import is_everything, select_params

    spec = ctx.analysis.get("params") or {}
    if is_everything(spec.get("include"), spec.get("exclude")):
        return None
    subset = select_params(flat, spec.get("include"), spec.get("exclude"))
    ctx.record_params(subset.record())
    return subset


def restricted(subset: ParamSubset | None, direction: torch.Tensor) -> torch.Tensor:
    """``direction`` zero outside the subset (unchanged without one)."""
    return direction if subset is None else subset.restrict(direction)


def random_directions(point: Point, seeds: Sequence[int], norm: str, ignore: str, subset: ParamSubset | None) -> torch.Tensor:
    """One seeded random direction per seed (rows), restricted to ``subset`` when there is one."""
    from lsx.landscape.surfaces.directions import random_direction

    mask = None if subset is None else subset.mask
    dirs = torch.stack([random_direction(point.flat, point.theta, int(s), norm, ignore, mask) for s in seeds])
    if subset is not None and not bool((dirs.norm(dim=1) > 0).all()):
        raise ValueError(
            f"analysis.params selects only parameters that analysis.ignore={ignore} leaves still (biases, norm layers): "
            "set analysis.ignore=none or include weights"
        )
    return dirs


def check_param_subset(ctx: JobContext) -> None:
    """``analysis.params`` selects some parameter of the configured model: checked on a freshly built model
    before the job trains or evaluates anything (one line naming the globs and a few valid names)."""
    spec = ctx.analysis.get("params") or {}
    from lsx.landscape.engine.subset import check_blocks, is_everything, param_blocks, select_params

    blocks = ctx.analysis.get("blocks")
    if is_everything(spec.get("include"), spec.get("exclude")) and blocks is None:
        return
    if blocks is not None:
        check_blocks(blocks)
    from lsx.training.checkpoints import model_from_config

    s = ctx.datamodule().shape
    shape = {"in_channels": s.in_channels, "height": s.height, "width": s.width, "num_classes": s.num_classes}
    flat = FlatParams(model_from_config(ctx.cfg["model"], shape))
    subset = select_params(flat, spec.get("include"), spec.get("exclude"))
    if blocks is not None:
        param_blocks(flat, blocks, subset)


def merged_config(ctx: JobContext, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """The job's config deep-merged with ``overrides`` (e.g. {data: {batch_size: 512}})."""
    base = {k: v for k, v in ctx.cfg.items() if k not in ("analysis", "hydra")}
    if not overrides:
        return dict(base, analysis=ctx.cfg.get("analysis"))
    merged = OmegaConf.to_container(OmegaConf.merge(OmegaConf.create(base), OmegaConf.create(dict(overrides))), resolve=True)
    merged["analysis"] = ctx.cfg.get("analysis")
    return merged


def endpoint_checkpoint(ctx: JobContext, spec: dict[str, Any]) -> Checkpoint:
    """An endpoint spec: {checkpoint: path} or {overrides: {...}, epoch: null} trained via the cache."""
    from lsx.training.runner import train

    if spec.get("checkpoint"):  # an lsx checkpoint may hold another model than the job's (pairs are checked later)
        return input_checkpoint(ctx, spec["checkpoint"], f"endpoint {spec.get('label') or spec['checkpoint']}", check=False)
    run = train(merged_config(ctx, spec.get("overrides")), progress=ctx.progress)
    return run.load(spec.get("epoch"))


def endpoint_checkpoints(ctx: JobContext, specs: list[dict[str, Any]]) -> list[Checkpoint]:
    """:func:`endpoint_checkpoint` of each spec; the runs to train are trained first with
    :func:`lsx.training.runner.train_all` (in parallel over the ranks of a launch)."""
    from lsx.training.runner import train_all

    train_all([merged_config(ctx, s.get("overrides")) for s in specs if not s.get("checkpoint")], progress=ctx.progress)
    return [endpoint_checkpoint(ctx, s) for s in specs]


def center_checkpoint(ctx: JobContext, epoch: int | None = None) -> Checkpoint:
    """The checkpoint a single-point job is centred on: ``analysis.center_ckpt`` (an lsx checkpoint from anywhere,
    or a state dict trained outside lsx: .pt, .safetensors, Lightning .ckpt) or else the cached run of
    ``analysis.target_seed``.

    A checkpoint from a file is validated like a cached one: it must load, hold the configured model and fit the
    configured data, or the job stops before evaluating; its sha256 goes into the job's results (``inputs``).
    """
    a = ctx.analysis
    path = a.get("center_ckpt")
    if not path:
        return ctx.train(seed=int(a["target_seed"])).load(epoch)
    if epoch is not None:
        raise ValueError("analysis.epoch selects a checkpoint of the cached run; with analysis.center_ckpt set it to null")
    return input_checkpoint(ctx, path, "center_ckpt")


def input_checkpoint(ctx: JobContext, path: str, role: str, check: bool = True) -> Checkpoint:
    """A checkpoint file given to the job (lsx's own or external), recorded with its sha256 in ``ctx.inputs``. An
    external one is built as the configured model; an lsx one is checked against it and the data when ``check``."""
    from lsx.training.checkpoints import CheckpointError, load_any_checkpoint, model_label

    s = ctx.datamodule().shape
    shape = {"in_channels": s.in_channels, "height": s.height, "width": s.width, "num_classes": s.num_classes}
    ckpt = load_any_checkpoint(path, {k: v for k, v in ctx.cfg.items() if k not in ("analysis", "hydra")}, shape)
    if check and ckpt.epoch >= 0:  # an lsx checkpoint: its own config must be this job's model and data shape
        if ckpt.model_name != model_label(ctx.cfg["model"]):
            raise CheckpointError(f"{role} {path} holds a {ckpt.model_name!r} model, expected {model_label(ctx.cfg['model'])!r}")
        if dict(ckpt.data_shape) != shape:
            raise CheckpointError(
                f"{role} {path} was trained on data of shape {ckpt.data_shape}, the configured data have {shape}"
            )
        ckpt.build_model()  # weights match the architecture (raises CheckpointError otherwise)
    ctx.record_input(role, {"path": str(Path(path).resolve()), "sha256": ckpt.sha256, "external": ckpt.epoch < 0})
    return ckpt


def same_architecture(ckpts: Sequence[Checkpoint]) -> None:
    check_same_architecture(list(ckpts))


def build_evaluator(ctx: JobContext, model: torch.nn.Module, bn: str, chunk: int | None):
    """The engine's evaluator on this job's fixed landscape subset."""
    from lsx.distributed import device
    from lsx.landscape.engine.evaluator import Evaluator

    subset = ctx.landscape_subset()
    if device().type != "cpu":  # one GPU per rank under a sharded launch
        model = model.to(device())
    ppp = ctx.analysis.get("points_per_pass")  # null: the evaluator's choice for this device
    return Evaluator(
        model,
        train=subset.train,
        test=subset.test,
        bn_policy=bn,
        chunk_size=int(chunk) if chunk else None,
        points_per_pass=None if ppp is None else int(ppp),
        loss_fn=ctx.loss_fn(),
    )


def record_centre_loss(ctx: JobContext, ckpt: Checkpoint, bn: str, measured: float | None = None) -> float:
    """Record (results.json ``training[].analysis_train_loss``) the train loss this analysis sees at ``ckpt``.

    ``measured``: the value the job already computed there (a grid's centre point, a search's base
    loss); None: one evaluation of the checkpoint's own model (its own BN statistics, policy ``bn``) on
    the landscape train subset, a single forward pass beside the job's thousands), with the job's configured
    loss (``loss._target_``): a model whose loss is not cross-entropy on logits records its own loss."""
    if measured is None:
        from lsx.distributed import device
        from lsx.landscape.engine.evaluator import train_loss_at

        model = ckpt.build_model()
        if device().type != "cpu":
            model = model.to(device())
        measured = train_loss_at(model, ctx.landscape_subset().train, bn, ctx.loss_fn())
    ctx.record_analysis_loss(ckpt, float(measured), bn)
    return float(measured)


def value_at_origin(values: np.ndarray, *axes: np.ndarray) -> float | None:
    """``values[i_0, i_1, ...]`` where every axis is exactly 0 (the centre the grid evaluated), else None."""
    index = []
    for ax in axes:
        hits = np.flatnonzero(np.asarray(ax) == 0.0)
        if not len(hits):
            return None
        index.append(int(hits[0]))
    return float(np.asarray(values)[tuple(index)])


def evaluate_points(
    ctx: JobContext,
    point: Point,
    directions: torch.Tensor,
    coords: np.ndarray,
    store: str,
    provenance: dict[str, Any],
    bn: str = "keep",
    chunk: int | None = None,
    flush_every: int = 25,
) -> dict[str, np.ndarray]:
    """Evaluate θ + coords @ directions at every row of ``coords`` (resumable store under the job dir)."""
    from lsx.landscape.engine.surface import compute_surface

    evaluator = build_evaluator(ctx, point.model, bn, chunk)
    workers = int(ctx.analysis.get("workers") or 1)
    # how many processes evaluate does not change a value: not part of the store's config check
    config = hashed_analysis(ctx.analysis)
    if ctx.inputs:  # checkpoint files the job was given, with their sha256
        provenance = dict(provenance, inputs=ctx.inputs)
    return compute_surface(
        evaluator,
        point.theta,
        directions,
        np.asarray(coords, dtype=np.float64),
        ctx.path(store),
        provenance=provenance,
        config=config,
        flush_every=int(flush_every),
        progress=ctx.point_progress,
        workers=workers,
    )


def axis(spec: dict[str, Any], name: str) -> np.ndarray:
    """Coordinates of one axis from {min, max, num}, validated by the engine's grid helpers."""
    from lsx.landscape.engine.grids import linspace_axis

    return linspace_axis(float(spec["min"]), float(spec["max"]), int(spec["num"]), name=name)
