"""Loss and accuracy at many points of parameter space — the hot path of every analysis.

Why it is fast: the data are tensors loaded once (on the model's device); parameters are overwritten
in place from one flat vector per point (no state_dict copies, no DataLoader per point); forward
passes run under ``inference_mode`` in channels_last (4-D image inputs), in chunks (one huge CPU batch
thrashes the allocator), through a torch.fx-rewritten copy of the forward graph that computes the same
function with less work (eval BatchNorm folded into the preceding convolution, monotone activations moved
after max-pooling; see :class:`InferenceGraph`); losses are summed on the device with one host sync per
split and point.
With ``torch.distributed`` initialized (world size > 1), points are sharded across ranks and merged,
so every rank returns the full arrays.
"""

from __future__ import annotations

import operator
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from .alloc import keep_large_allocations_on_heap
from .bn_policy import batchnorm_layers, check_policy, clamp_running_var, preserved_bn_state, reestimate_bn, uses_buffers
from .first_layer import FirstLayerPlane
from .flat import FlatParams
from .grids import Grid
from .progress import Progress, ticker

# plane="auto" combines the first layer from K+1 stored outputs only when that layer does at least this many
# multiply-adds per output per stored stream: measured on this CPU (make bench; calibration in README), an MLP's
# 64- and 784-input first layers run 1.4x and 4x faster that way, while 3x3 convolutions on 1-3 channels
# (fan-in 9-27, memory-bound either way) gain nothing or lose a little
PLANE_MIN_FAN_IN_PER_OUTPUT = 16


class Evaluator:
    """Evaluates a model on a fixed train/test subset at points θ0 + Σ_k c_k d_k.

    ``train``/``test`` are ``(x, y)`` tensors (the landscape subset); ``bn_policy`` is ``keep``,
    ``upbn`` or ``states`` (see :mod:`lsx.landscape.engine.bn_policy`). ``chunk_size`` None picks one from the
    activation sizes (:func:`auto_chunk_size`). ``upbn_batches`` limits the UpBN pass to that many chunks
    of the train subset; ``upbn_inputs`` gives separate inputs for it instead. ``fuse`` runs the forward
    passes through an :class:`InferenceGraph` (same function up to float rounding; the model itself is
    used when the graph cannot be rewritten). ``plane`` lets :meth:`evaluate` compute the first layer at
    every point from outputs precomputed at θ0 and along each direction (:mod:`lsx.landscape.engine.first_layer`;
    exact up to float rounding, used when the first layer can be isolated and its outputs fit
    ``plane_budget_bytes``; :attr:`plane_active` / :attr:`plane_reason` say whether it was). ``"auto"`` (the
    default) uses it only where the first layer does enough work per output to pay for streaming K+1 stored
    outputs (fan-in ≥ :data:`PLANE_MIN_FAN_IN_PER_OUTPUT`·(K+1): an MLP's dense first layer, not a 3x3
    convolution on a few channels, which is memory-bound either way); ``True`` forces it, ``False`` never.
    ``points_per_pass`` > 1 evaluates that many points per vmapped forward pass (:mod:`lsx.landscape.engine.batched`);
    None means 16 on CUDA for models under 5M parameters with a non-UpBN policy, else 1 (the CPU path).
    ``self.flat`` is the layout that θ and the directions must use (parameters, plus BN buffers under ``states``).
    ``extra_splits`` adds further named ``(x, y)`` sets (e.g. ``{"val": ...}``), evaluated after train and test
    with metrics ``{name}_loss``/``{name}_acc``: one evaluator (one traced graph) for every split of a dataset.
    ``loss_fn`` (a :mod:`lsx.training.losses` callable ``(model, (x, y))``) replaces cross-entropy: the points are
    then evaluated on a generic path (the model's own forward, no fused graph, first-layer plane or vmapped
    points; ``y`` keeps its dtype) and ``{split}_acc`` is NaN where the loss reports no accuracy. None (the
    default) keeps the cross-entropy fast path exactly as it is.
    """

    def __init__(
        self,
        model: nn.Module,
        train: tuple[torch.Tensor, torch.Tensor],
        test: tuple[torch.Tensor, torch.Tensor] | None = None,
        bn_policy: str = "keep",
        chunk_size: int | None = None,
        channels_last: bool = True,
        upbn_batches: int | None = None,
        upbn_inputs: torch.Tensor | None = None,
        fuse: bool = True,
        plane: bool | str = "auto",
        plane_budget_bytes: int = 512 << 20,
        points_per_pass: int | None = None,
        extra_splits: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
        loss_fn: Callable | None = None,
    ) -> None:
        keep_large_allocations_on_heap()
        self.loss_fn = loss_fn
        if loss_fn is not None:  # the fast paths assume logits and cross-entropy
            fuse, plane, points_per_pass = False, False, 1
        self.bn_policy = check_policy(bn_policy)
        params = list(model.parameters())
        self.device = params[0].device if params else torch.device("cpu")
        self.model = model.eval()
        self.channels_last = bool(channels_last)
        if self.channels_last:
            # torch's stubs for Module.to omit the memory_format keyword it accepts
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.flat = FlatParams(self.model, include_buffers=uses_buffers(bn_policy))
        self.sets: dict[str, tuple[torch.Tensor, torch.Tensor]] = {"train": self._prepare("train", *train)}
        if test is not None:
            self.sets["test"] = self._prepare("test", *test)
        for name, data in (extra_splits or {}).items():
            if name in self.sets or not str(name).isidentifier():
                raise ValueError(f"extra split name {name!r} must be an identifier other than {', '.join(self.sets)}")
            self.sets[name] = self._prepare(name, *data)
        if chunk_size is not None and int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be >= 1 or None (automatic), got {chunk_size}")
        self.chunk = int(chunk_size) if chunk_size else auto_chunk_size(self.model, self.sets["train"][0][:2])
        self._chunked = {name: self._split_chunks(x, y) for name, (x, y) in self.sets.items()}
        self._bn_layers = batchnorm_layers(self.model)
        self._upbn: list[torch.Tensor] | None = None
        if self.bn_policy == "upbn" and self._bn_layers:
            if upbn_inputs is not None:
                ux = self._as_input(upbn_inputs.to(self.device))
            else:
                tx = self.sets["train"][0]
                n_up = len(tx) if upbn_batches is None else min(len(tx), int(upbn_batches) * self.chunk)
                ux = tx[:n_up]
            if len(ux) == 0:
                raise ValueError("UpBN needs at least one train example to re-estimate BN statistics")
            self._upbn = [ux[i : i + self.chunk] for i in range(0, len(ux), self.chunk)]
        self.graph = InferenceGraph.build(self.model, self.sets["train"][0][:4]) if fuse else None
        self.forward_model: nn.Module = self.graph.module if self.graph is not None else self.model
        self.forward_passes = 0  # chunk forwards on the evaluation splits (tests and benchmarks count them)
        # ``states``: lower bound of the moved running variances (a number, or per-layer tensors from
        # bn_policy.variance_floors); 0 keeps the old behaviour
        self.var_floor: float | list = 0.0
        if plane not in (True, False, "auto"):
            raise ValueError(f"plane must be True, False or 'auto', got {plane!r}")
        self.plane: bool | str = plane
        self.plane_budget_bytes = int(plane_budget_bytes)
        self._plane: FirstLayerPlane | None = None
        self.plane_reason = "not tried yet (evaluate() builds it)" if self.plane else "disabled (plane=False)"
        self._plane_coef: torch.Tensor | None = None  # (1, c_1..c_K) of the point being evaluated
        if points_per_pass is None:
            small = self.flat.numel <= 5_000_000 and not (self.bn_policy == "upbn" and self._bn_layers)
            points_per_pass = 16 if (self.device.type == "cuda" and small) else 1
        if int(points_per_pass) < 1:
            raise ValueError(f"points_per_pass must be >= 1 (or None for automatic), got {points_per_pass}")
        self.points_per_pass = int(points_per_pass)

    # ------------------------------------------------------------------ data
    def _as_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x.contiguous()

    def _prepare(self, name: str, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise ValueError(f"{name} data must be (x, y) tensors, got ({type(x).__name__}, {type(y).__name__})")
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(f"{name} data: {len(x)} inputs and {len(y)} labels; need the same non-zero number")
        if self.loss_fn is not None:
            return self._as_input(x.to(self.device)), y.to(self.device)
        return self._as_input(x.to(self.device)), y.to(self.device, dtype=torch.long)

    def _split_chunks(self, x: torch.Tensor, y: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(x[i : i + self.chunk], y[i : i + self.chunk]) for i in range(0, len(x), self.chunk)]

    def _chunks(self, x: torch.Tensor, y: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Chunks of one split as the engine runs them (the benchmark's forward-pass floor reuses these)."""
        return self._split_chunks(x, y)

    @property
    def metric_names(self) -> list[str]:
        """``{split}_loss``, ``{split}_acc`` per split: train, test, then any extra splits."""
        return [f"{name}_{m}" for name in self.sets for m in ("loss", "acc")]

    # ------------------------------------------------------------------ single point
    @torch.inference_mode()
    def _metrics_here(self, splits: Sequence[str] | None = None) -> dict[str, float]:
        self._prepare_forward()
        if self.loss_fn is not None:
            return self._metrics_generic(splits)
        out: dict[str, float] = {}
        for name in splits or self.sets:
            n = len(self.sets[name][1])
            sums = []
            for j, (xb, yb) in enumerate(self._chunked[name]):
                if self._plane_coef is not None:
                    logits = self._plane.forward(name, j, self._plane_coef)  # type: ignore[union-attr]
                else:
                    logits = self.forward_model(xb)
                self.forward_passes += 1
                if logits.dtype in (torch.float16, torch.bfloat16):
                    logits = logits.float()
                sums.append(summed_loss_and_hits(logits, yb))
            # one host sync per split (no accumulators for the common single chunk: every small op costs
            # a few µs of dispatch); NaN/inf survive the division (far points may overflow)
            if len(sums) == 1:
                ((loss_sum, correct),) = sums
            else:
                loss_sum, correct = torch.stack([l for l, _ in sums]).sum(), torch.stack([h for _, h in sums]).sum()
            out[f"{name}_loss"] = float(loss_sum) / n
            out[f"{name}_acc"] = int(correct) / n
        return out

    def _metrics_generic(self, splits: Sequence[str] | None) -> dict[str, float]:
        """The configured loss per chunk, chunk means weighted by their counts (tokens, examples); one sync per split."""
        from lsx.training.losses import loss_terms

        loss_fn = self.loss_fn
        if loss_fn is None:
            raise ValueError("the generic path evaluates a loss_fn; this evaluator has none")
        out: dict[str, float] = {}
        for name in splits or self.sets:
            rows = []
            for xb, yb in self._chunked[name]:
                loss, acc, count = loss_terms(loss_fn(self.forward_model, (xb, yb)), len(xb))
                self.forward_passes += 1
                c = torch.as_tensor(count, dtype=torch.float64, device=loss.device)
                a = torch.full((), float("nan"), dtype=torch.float64, device=loss.device) if acc is None else acc.double()
                rows.append(torch.stack([loss.double() * c, a * c, c]))
            total, hits, n = (float(v) for v in torch.stack(rows).sum(0))
            out[f"{name}_loss"] = total / n if n else float("nan")
            out[f"{name}_acc"] = hits / n if n else float("nan")
        return out

    def _prepare_forward(self) -> None:
        """BN statistics of the current weights (UpBN), then the fused graph's weights from the model's."""
        if self._upbn is not None:
            reestimate_bn(self.model, self._upbn)
        if self.graph is not None:
            self.graph.sync()

    def _load_point(self, theta: torch.Tensor) -> None:
        self.flat.set_(theta)
        if self.bn_policy == "states":
            # a running variance extrapolated below 0 (beyond a path's end points) has no meaning and
            # would make every such point NaN: clamp it to ``var_floor`` (see bn_policy.EXTRAPOLATED_BN)
            clamp_running_var(self._bn_layers, self.var_floor)

    def evaluate_at(self, theta: torch.Tensor, splits: Sequence[str] | None = None, restore: bool = False) -> dict[str, float]:
        """Metrics (``{split}_loss``, ``{split}_acc``) at one flat point θ in :attr:`flat`'s layout.

        The model keeps θ afterwards unless ``restore`` (then parameters and BN buffers are put back).
        ``splits`` limits the work, e.g. ``("train",)`` for a loss-only search.
        """
        self._check_splits(splits)
        if not restore:
            self._load_point(theta)
            return self._metrics_here(splits)
        saved = self.flat.get()
        with preserved_bn_state(self.model):
            try:
                self._load_point(theta)
                return self._metrics_here(splits)
            finally:
                self.flat.set_(saved)

    @torch.inference_mode()
    def predict(self, theta: torch.Tensor | None = None, split: str = "test", restore: bool = True) -> torch.Tensor:
        """Predicted labels (argmax) on a split at θ (current parameters when None), for label agreement."""
        if self.loss_fn is not None:
            raise ValueError("predict() needs class logits: it is not defined for an evaluator with a configured loss")
        self._check_splits([split])
        saved = self.flat.get() if (restore and theta is not None) else None
        with preserved_bn_state(self.model) if restore else nullcontext():
            try:
                if theta is not None:
                    self._load_point(theta)
                self._prepare_forward()
                return torch.cat([self.forward_model(xb).argmax(1) for xb, _ in self._chunked[split]]).cpu()
            finally:
                if saved is not None:
                    self.flat.set_(saved)

    def _check_splits(self, splits: Sequence[str] | None) -> None:
        for s in splits or ():
            if s not in self.sets:
                raise ValueError(f"unknown split {s!r}; this evaluator has {', '.join(self.sets)}")

    # ------------------------------------------------------------------ many points
    def evaluate(
        self,
        theta0: torch.Tensor,
        directions: torch.Tensor | Sequence[torch.Tensor],
        coords: np.ndarray | Grid,
        indices: Sequence[int] | None = None,
        on_point: Callable[[int, dict[str, float]], None] | None = None,
        progress: Progress = False,
        workers: int = 1,
    ) -> dict[str, np.ndarray]:
        """Metrics at θ0 + coords[i] @ directions for i in ``indices`` (default all); NaN at other points.

        ``directions`` is a (K, numel) tensor or a list of K flat tensors, ``coords`` a (P, K) array or a
        :class:`~lsx.landscape.engine.grids.Grid`. Points are formed in float64 and written in place; the model's
        parameters (and BN buffers) are restored afterwards, even on error. Sharded over torch.distributed
        ranks when initialized with world size > 1; every rank returns the merged arrays.
        ``on_point(i, metrics)`` is called after each point this rank computes. ``progress``: True for a
        tqdm bar (rank 0), or a callable ``progress(done, total)``.
        ``workers`` > 1 shards this rank's points over that many forked local processes
        (:func:`evaluate_in_workers`, CPU only); ``on_point`` then runs in this process as each worker's
        share arrives.
        """
        if int(workers) > 1:
            return evaluate_in_workers(self, theta0, directions, coords, int(workers), indices, on_point, progress)
        dirs = self.check_directions(theta0, directions)
        pts = coords.points if isinstance(coords, Grid) else np.atleast_2d(np.asarray(coords, dtype=np.float64))
        if pts.ndim != 2 or pts.shape[1] != dirs.shape[0]:
            raise ValueError(f"coords have shape {pts.shape}: need (P, {dirs.shape[0]}), one column per direction")
        todo = list(range(len(pts))) if indices is None else [int(i) for i in indices]
        bad = [i for i in todo if not 0 <= i < len(pts)]
        if bad:
            raise ValueError(f"indices {bad[:5]} out of range for {len(pts)} points")
        rank, world = dist_rank_world()
        mine = todo[rank::world]
        results = {m: np.full(len(pts), np.nan) for m in self.metric_names}

        theta64 = theta0.detach().to(self.device, torch.float64)
        dirs64 = dirs.detach().to(self.device, torch.float64)
        point = torch.empty_like(theta64)
        c_all = torch.as_tensor(pts, dtype=torch.float64, device=self.device)
        tick = _progress_fn(progress, len(mine), rank)
        if self.points_per_pass > 1:
            from .batched import evaluate_batched

            try:
                results = evaluate_batched(self, theta0, dirs, pts, mine, self.points_per_pass, on_point, tick)
            finally:
                tick(None)
            return merge_across_ranks(results, mine, todo, self.device) if world > 1 else results
        saved = self.flat.get()
        plane = self._plane_for(theta0, dirs) if len(mine) > 1 else None
        coef = torch.ones(dirs.shape[0] + 1, dtype=torch.float64, device=self.device)
        try:
            with preserved_bn_state(self.model):
                for n_done, i in enumerate(mine, 1):
                    torch.addmv(theta64, dirs64.T, c_all[i], out=point)  # θ0 + Σ_k c_k d_k, exact in float64
                    if plane is not None:
                        coef[1:] = c_all[i]
                        self._plane_coef = coef
                    m = self.evaluate_at(point)
                    for k, v in m.items():
                        results[k][i] = v
                    if on_point is not None:
                        on_point(i, m)
                    tick(n_done)
        finally:
            self._plane_coef = None
            if plane is not None:
                plane.release()
            self.flat.set_(saved)
            if self.graph is not None:
                self.graph.sync()
            tick(None)
        if world > 1:
            results = merge_across_ranks(results, mine, todo, self.device)
        return results

    @property
    def plane_active(self) -> bool:
        """Whether the last :meth:`evaluate` combined the first layer from precomputed outputs."""
        return self.plane_reason == "active"

    def _plane_for(self, theta0: torch.Tensor, dirs: torch.Tensor) -> FirstLayerPlane | None:
        """The first-layer plane prepared for θ0 and ``dirs``, or None (reason in :attr:`plane_reason`)."""
        if not self.plane:
            return None
        if self._plane is None:
            built = FirstLayerPlane.build(
                self.graph.module if self.graph is not None else None,
                self.model,
                self.flat,
                self.graph.pairs if self.graph is not None else (),
            )
            if isinstance(built, str):
                self.plane, self.plane_reason = False, built
                return None
            self._plane = built
        if self.plane == "auto":
            fan_in, k = self._plane.fan_in, dirs.shape[0]
            if fan_in < PLANE_MIN_FAN_IN_PER_OUTPUT * (k + 1):
                self.plane_reason = (
                    f"auto: the first layer's fan-in {fan_in} is below {PLANE_MIN_FAN_IN_PER_OUTPUT}·(K+1) = "
                    f"{PLANE_MIN_FAN_IN_PER_OUTPUT * (k + 1)} for K={k} directions; recomputing it is as cheap"
                )
                return None
        if self.graph is not None:
            self.graph.sync()
        th = theta0.detach().to(self.device)
        if not self._plane.prepare(th, dirs.detach().to(self.device), self._chunked, self.plane_budget_bytes):
            self.plane_reason = f"first-layer outputs exceed plane_budget_bytes={self.plane_budget_bytes}"
            return None
        self.plane_reason = "active"
        return self._plane

    def check_directions(self, theta0: torch.Tensor, directions: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """Directions as a (K, numel) tensor, checked against θ0 and the model's flat layout."""
        if isinstance(directions, torch.Tensor):
            dirs = directions
        else:
            directions = list(directions)
            if not directions:
                raise ValueError("no directions given; pass a (K, numel) tensor or a list of K flat tensors")
            dirs = torch.stack([torch.as_tensor(d) for d in directions])
        if dirs.dim() == 1:
            dirs = dirs[None]
        if dirs.dim() != 2 or dirs.shape[0] < 1:
            raise ValueError(f"directions must be (K, numel) with K >= 1, got shape {tuple(dirs.shape)}")
        if dirs.shape[1] != self.flat.numel or theta0.numel() != self.flat.numel:
            raise ValueError(
                f"directions have {dirs.shape[1]} entries and θ0 {theta0.numel()}, but the model's flat layout has "
                f"{self.flat.numel} (BN policy {self.bn_policy!r}"
                f"{': parameters + BN running stats' if self.flat.include_buffers else ': parameters only'}); "
                "directions do not match the model"
            )
        return dirs


_FEW_CLASSES = 32  # up to this many classes the hand-written log-sum-exp beats F.cross_entropy on CPU


def train_loss_at(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    bn_policy: str = "keep",
    loss_fn: Callable | None = None,
    channels_last: bool = True,
) -> float:
    """The train loss of ``model`` at its own weights on ``train`` (one evaluation, no fused graph): what a job
    records as an optimum's ``analysis_train_loss`` and what a landscape stop target compares, through one piece of
    code so the two cannot drift apart. The evaluator puts ``model`` in eval mode (and channels_last): pass a copy."""
    ev = Evaluator(model, train=train, bn_policy=bn_policy, fuse=False, loss_fn=loss_fn, channels_last=channels_last)
    return float(ev.evaluate_at(ev.flat.get(), splits=("train",))["train_loss"])


def summed_loss_and_hits(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ cross-entropy as a float64 0-d tensor, number of correct argmax predictions) of one chunk.

    Why not ``F.cross_entropy(reduction="sum")`` + ``argmax``: on CPU its log-softmax kernel vectorizes
    along the class dimension, so with 10 classes it costs ~130 µs per 1000 rows — a quarter of a small
    MLP's whole evaluation. One ``max`` gives both the shift of a stable log-sum-exp and the predicted
    labels (first maximum, as ``argmax``), ~3.5x faster (measured here, 1 thread). Same value up to float
    rounding; NaN/inf logits still give NaN/inf. Many classes keep the library kernel, which is faster there.
    """
    if logits.dim() != 2 or logits.shape[1] > _FEW_CLASSES:
        return F.cross_entropy(logits, labels, reduction="sum").double(), (logits.argmax(1) == labels).sum()
    top, predicted = logits.max(1)
    lse = (logits - top[:, None]).exp_().sum(1).log_().add_(top)
    loss = lse.sub_(logits.gather(1, labels[:, None]).squeeze(1)).sum(dtype=torch.float64)  # rows in float64
    return loss, (predicted == labels).sum()


def evaluate_in_workers(
    ev: "Evaluator",
    theta0: torch.Tensor,
    directions,
    coords,
    workers: int,
    indices: Sequence[int] | None = None,
    on_point: Callable[[int, dict[str, float]], None] | None = None,
    progress: Progress = False,
) -> dict[str, np.ndarray]:
    """:meth:`Evaluator.evaluate` with the points split over ``workers`` forked processes of 1 thread each.

    Why processes: one point's forward passes use the cores poorly at small batch sizes (8x8 digits,
    small chunks) and a torch thread pool adds synchronization per operator; independent points on
    separate cores scale with no communication. Forking shares the model and the data copy-on-write,
    so nothing is pickled but the results. CPU only (CUDA cannot be forked); points are interleaved
    (i, i+w, ...) so far and near points spread evenly.
    """
    import multiprocessing as mp

    if ev.device.type != "cpu":
        raise ValueError(f"workers={workers} forks processes, which needs a CPU evaluator (this one is on {ev.device})")
    pts = coords.points if isinstance(coords, Grid) else np.atleast_2d(np.asarray(coords, dtype=np.float64))
    todo = list(range(len(pts))) if indices is None else [int(i) for i in indices]
    rank, world = dist_rank_world()
    mine = todo[rank::world]
    shares = [mine[w::workers] for w in range(workers)]
    ctx = mp.get_context("fork")
    pipes, procs = [], []
    for share in shares:
        if not share:
            continue
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_worker, args=(ev, theta0, directions, pts, share, send), daemon=True)
        proc.start()
        send.close()
        pipes.append((recv, share))
        procs.append(proc)
    results = {m: np.full(len(pts), np.nan) for m in ev.metric_names}
    tick = _progress_fn(progress, len(mine), rank)
    done = 0
    try:
        for recv, share in pipes:
            status, payload = recv.recv()
            if status != "ok":
                raise RuntimeError(f"a landscape worker failed: {payload}")
            for k, v in payload.items():
                results[k][share] = v[share]
            for i in share:
                if on_point is not None:
                    on_point(i, {k: float(results[k][i]) for k in results})
            done += len(share)
            tick(done)
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
        tick(None)
    if world > 1:
        results = merge_across_ranks(results, mine, todo, ev.device)
    return results


_IN_LOCAL_WORKER = False  # set in a forked worker: its share is already this rank's, no collectives there


def _worker(ev: "Evaluator", theta0, directions, pts, share, send) -> None:
    global _IN_LOCAL_WORKER
    _IN_LOCAL_WORKER = True
    try:
        torch.set_num_threads(1)
        send.send(("ok", ev.evaluate(theta0, directions, pts, indices=share)))
    except BaseException as err:  # noqa: BLE001 - reported to the parent, which raises
        send.send(("error", f"{type(err).__name__}: {err}"))
    finally:
        send.close()


def _progress_fn(progress: Progress, total: int, rank: int) -> Callable[[int | None], None]:
    """A tick(done) function for the landscape points (see :func:`lsx.landscape.engine.progress.ticker`)."""
    return ticker(progress, total, "landscape points", rank)


_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
# (folded conv, original conv, original BN) of one conv → BatchNorm pair an InferenceGraph rewrote
FoldedPair = tuple[_ConvNd, _ConvNd, _BatchNorm]
_MAXPOOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
_MONOTONE_MODULES = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.ReLU6, nn.Hardtanh, nn.Softplus)
_MONOTONE_FUNCTIONS = (torch.relu, torch.tanh, torch.sigmoid, F.relu, F.tanh, F.sigmoid, F.leaky_relu, F.elu, F.relu6)
_MAXPOOL_FUNCTIONS = (F.max_pool1d, F.max_pool2d, F.max_pool3d)


class InferenceGraph:
    """A copy of an eval-mode model's forward graph that does less work for the same function.

    Why: in evaluation the network is a fixed function of its weights, so two exact identities save
    time at every point — measured on this CPU they are ~25% of a ResNet-20 forward and ~45% of a
    SimpleCNN one:
    - ``conv → BatchNorm`` (eval) is one convolution with weights ``W·s`` and bias ``(b − μ)·s + β``,
      ``s = γ/√(σ² + ε)``;
    - a monotone non-decreasing activation (ReLU, tanh, sigmoid, ...) commutes with max-pooling, so it is
      applied to the 4x smaller pooled map;
    - a ReLU whose input is a fresh tensor nobody else reads (a convolution's or a sum's output) runs in place.
    The rewritten module (``torch.fx``) shares every untouched submodule with the model; the folded
    convolutions are new modules whose weights :meth:`sync` recomputes from the model's current
    parameters and BN statistics (cheap: O(#parameters)). :meth:`build` returns None when the model
    cannot be traced, has nothing to rewrite, or the rewritten graph does not reproduce the model's
    output on a probe batch, so callers fall back to the model itself.
    """

    def __init__(self, module: torch.fx.GraphModule, pairs: list[FoldedPair]) -> None:
        self.module = module
        self.pairs = pairs  # (folded conv, original conv, original BN)

    @classmethod
    @torch.no_grad()
    def build(cls, model: nn.Module, probe: torch.Tensor) -> "InferenceGraph | None":
        try:
            gm = torch.fx.symbolic_trace(model)
        except Exception:  # dynamic control flow etc.: run the model as it is
            return None
        pairs = _fold_conv_bn(gm)
        swapped = _pool_before_activation(gm)
        inplace = _relu_in_place(gm)
        if not pairs and not swapped and not inplace:
            return None
        gm.graph.lint()
        gm.recompile()
        graph = cls(gm.eval(), pairs)
        graph.sync()
        with torch.inference_mode():
            ref, out = model(probe), gm(probe)
        scale = 1.0 + float(ref.abs().max()) if ref.numel() else 1.0
        tol = 1e-4 if ref.dtype in (torch.float32, torch.float16, torch.bfloat16) else 1e-9
        if out.shape != ref.shape or not torch.allclose(out, ref, rtol=tol, atol=tol * scale, equal_nan=True):
            return None
        return graph

    @torch.no_grad()
    def sync(self) -> None:
        """Recompute the folded convolutions from the model's current weights and BN statistics."""
        for fused, conv, bn in self.pairs:
            mean, var, fused_bias = bn.running_mean, bn.running_var, fused.bias
            if mean is None or var is None or fused_bias is None:  # _fold_conv_bn pairs only BNs that track them
                raise RuntimeError(f"{type(bn).__name__} folded into a convolution lost its running statistics or bias")
            s = torch.rsqrt(var + bn.eps)
            if bn.weight is not None:
                s = s * bn.weight
            fused.weight.copy_(conv.weight * s.view(-1, *([1] * (conv.weight.dim() - 1))))
            shift = -mean * s if conv.bias is None else (conv.bias - mean) * s
            fused_bias.copy_(shift if bn.bias is None else shift + bn.bias)


def fold_batchnorm(gm: torch.fx.GraphModule) -> InferenceGraph:
    """Rewrite ``gm`` in place with the :class:`InferenceGraph` rewrites that keep the value of every node
    it still has — eval BatchNorm folded into the convolution before it, ReLUs on fresh tensors in place,
    but no activation moved after pooling — and return it synced to the current weights.

    Why a second entry point: callers that read hidden nodes (activation matching reads every
    post-activation map) need those maps unchanged, which the pooling swap would not keep."""
    pairs = _fold_conv_bn(gm)
    _relu_in_place(gm)
    gm.graph.lint()
    gm.recompile()
    graph = InferenceGraph(gm.eval(), pairs)
    graph.sync()
    return graph


def _called_module(modules: dict[str, nn.Module], node: torch.fx.Node) -> nn.Module | None:
    """The submodule a ``call_module`` node calls; None for any other node."""
    return modules.get(node.target) if node.op == "call_module" and isinstance(node.target, str) else None


def _conv_geometry(conv: _ConvNd) -> dict[str, Any]:
    """The constructor arguments that give a convolution ``conv``'s shape (kernel, stride, padding, ...).

    Why a dict: ``_ConvNd`` types these attributes as ``tuple[int, ...]`` while ``Conv2d(...)`` asks for
    ``int | tuple[int, int]``; the values always have the conv's own rank, so they round-trip as they are."""
    return {
        "kernel_size": conv.kernel_size,
        "stride": conv.stride,
        "padding": conv.padding,
        "dilation": conv.dilation,
        "groups": conv.groups,
        "padding_mode": conv.padding_mode,
    }


def _fold_conv_bn(gm: torch.fx.GraphModule) -> list[FoldedPair]:
    modules = dict(gm.named_modules())
    pairs: list[FoldedPair] = []
    for node in list(gm.graph.nodes):
        bn = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(bn, _BatchNorm) or bn.running_mean is None or not bn.track_running_stats:
            continue
        prev = node.args[0] if node.args else None
        if not isinstance(prev, torch.fx.Node):
            continue
        conv = _called_module(modules, prev)
        if not isinstance(conv, _CONVS) or len(prev.users) != 1 or conv.out_channels != bn.num_features:
            continue
        fused = type(conv)(
            conv.in_channels,
            conv.out_channels,
            bias=True,
            device=conv.weight.device,
            dtype=conv.weight.dtype,
            **_conv_geometry(conv),
        ).requires_grad_(False)
        if conv.weight.dim() == 4 and conv.weight.is_contiguous(memory_format=torch.channels_last):
            # torch's stubs for Module.to omit the memory_format keyword it accepts
            fused = fused.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        name = f"_folded_{len(pairs)}"
        gm.add_submodule(name, fused)
        prev.target = name
        node.replace_all_uses_with(prev)
        gm.graph.erase_node(node)
        pairs.append((fused, conv, bn))
    return pairs


def _is_monotone(node: torch.fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        m = _called_module(modules, node)
        if isinstance(m, nn.LeakyReLU):
            return m.negative_slope >= 0
        if isinstance(m, nn.ELU):
            return m.alpha >= 0
        return isinstance(m, _MONOTONE_MODULES)
    if node.op == "call_function" and node.target in _MONOTONE_FUNCTIONS:
        if node.target is F.leaky_relu:
            slope = node.args[1] if len(node.args) > 1 else node.kwargs.get("negative_slope", 0.01)
            return isinstance(slope, (int, float)) and slope >= 0
        if node.target is F.elu:
            alpha = node.args[1] if len(node.args) > 1 else node.kwargs.get("alpha", 1.0)
            return isinstance(alpha, (int, float)) and alpha >= 0
        return True
    if node.op == "call_method" and node.target in ("relu", "tanh", "sigmoid"):
        return True
    return False


def _is_plain_maxpool(node: torch.fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        m = _called_module(modules, node)
        return isinstance(m, _MAXPOOLS) and not m.return_indices
    if node.op == "call_function" and node.target in _MAXPOOL_FUNCTIONS:
        return not node.kwargs.get("return_indices", False) and not (len(node.args) > 6 and node.args[6])
    return False


def _pool_before_activation(gm: torch.fx.GraphModule) -> int:
    """Rewrite act(x) → maxpool into maxpool(x) → act: max commutes with non-decreasing functions."""
    modules = dict(gm.named_modules())
    swapped = 0
    for pool in list(gm.graph.nodes):
        if not _is_plain_maxpool(pool, modules) or not pool.args:
            continue
        act = pool.args[0]
        if not isinstance(act, torch.fx.Node) or len(act.users) != 1 or not _is_monotone(act, modules):
            continue
        if not act.args or not isinstance(act.args[0], torch.fx.Node) or any(isinstance(a, torch.fx.Node) for a in act.args[1:]):
            continue
        x = act.args[0]
        pool.replace_all_uses_with(act)  # users of the pool now read the activation
        pool.args = (x,) + tuple(pool.args[1:])  # the pool reads the activation's input
        act.args = (pool,) + tuple(act.args[1:])  # the activation reads the pool
        act.prepend(pool)  # keep topological order: pool before activation
        swapped += 1
    return swapped


def _relu_in_place(gm: torch.fx.GraphModule) -> int:
    """ReLU in place where its input is a freshly computed tensor read by nothing else."""
    modules = dict(gm.named_modules())
    fresh_modules = _CONVS + (nn.Linear, _BatchNorm)
    changed = 0
    for node in list(gm.graph.nodes):
        is_relu = (node.op == "call_function" and node.target in (F.relu, torch.relu)) or (
            node.op == "call_module" and type(modules.get(node.target)) is nn.ReLU
        )
        if not is_relu or not node.args or not isinstance(node.args[0], torch.fx.Node):
            continue
        src = node.args[0]
        fresh = (src.op == "call_module" and isinstance(modules.get(src.target), fresh_modules)) or (
            src.op == "call_function" and src.target in (operator.add, torch.add)
        )
        if not fresh or len(src.users) != 1:
            continue
        with gm.graph.inserting_after(node):
            new = gm.graph.call_function(F.relu, (src,), {"inplace": True})
        node.replace_all_uses_with(new)
        gm.graph.erase_node(node)
        changed += 1
    return changed


@torch.inference_mode()
def auto_chunk_size(model: nn.Module, example: torch.Tensor, budget_bytes: int = 4 << 20) -> int:
    """Largest power-of-two batch (32..1024) whose biggest activation fits ``budget_bytes``.

    Why: on CPU, a batch whose activations outgrow the caches runs slower per image; measured here
    (2 MiB L2 per core) ResNet-20 on 32x32 runs fastest at 64 per chunk (4 MiB activations), 8x8 digits
    at 512+.
    """
    biggest = [0]

    def hook(_m, _i, out):
        if isinstance(out, torch.Tensor):
            biggest[0] = max(biggest[0], out.numel() * out.element_size())

    was_training = model.training
    model.eval()
    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        model(example)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    per_example = max(1, biggest[0] // max(1, len(example)))
    n = 32
    while n * 2 <= 1024 and n * 2 * per_example <= budget_bytes:
        n *= 2
    return n


_ONE_PROCESS = 0  # > 0 inside one_process(): evaluate as one process although a process group exists


@contextmanager
def one_process() -> Iterator[None]:
    """Evaluate as one process (no sharding, no collectives) while a process group exists.

    Why: a job that does not shard runs on one rank alone while the others wait (``lsx.distributed``); its
    evaluations must not wait for ranks that are not evaluating."""
    global _ONE_PROCESS
    _ONE_PROCESS += 1
    try:
        yield
    finally:
        _ONE_PROCESS -= 1


def dist_rank_world() -> tuple[int, int]:
    """(rank, world size) of the default process group, (0, 1) when torch.distributed is not in use
    (or inside :func:`one_process`)."""
    if _IN_LOCAL_WORKER or _ONE_PROCESS:
        return 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


_dist_rank_world = dist_rank_world  # older name


def merge_across_ranks(
    results: dict[str, np.ndarray], mine: Sequence[int], todo: Sequence[int], device: torch.device | str = "cpu"
) -> dict[str, np.ndarray]:
    """Every rank's metrics at all points: an all_reduce sum of arrays that are 0 outside each rank's points.

    NaN/inf stay where a rank computed them (x + 0 keeps them); points outside ``todo`` are NaN.
    """
    names = sorted(results)
    n = len(next(iter(results.values()))) if results else 0
    dev = torch.device(device) if torch.distributed.get_backend() == "nccl" else torch.device("cpu")
    buf = torch.zeros(len(names), n, dtype=torch.float64)
    idx = torch.as_tensor(list(mine), dtype=torch.long)
    for j, k in enumerate(names):
        if len(idx):
            buf[j, idx] = torch.as_tensor(results[k][idx.numpy()], dtype=torch.float64)
    buf = buf.to(dev)
    torch.distributed.all_reduce(buf)
    merged = buf.cpu().numpy()
    out = {}
    not_requested = np.ones(n, dtype=bool)
    not_requested[list(todo)] = False
    for j, k in enumerate(names):
        v = merged[j].copy()
        v[not_requested] = np.nan
        out[k] = v
    return out
