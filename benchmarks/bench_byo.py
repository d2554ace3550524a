"""Your-own-model benchmark on the ``byo_transformer`` preset: the targets for models lsx does not define.

The model, data and loss are the preset's own (a GPT-2-style transformer built from a ``transformers`` config,
the generated sequence task, next-token cross-entropy through ``loss._target_``), composed as ``lsx.analyze``
composes them; the weights are the initialization (timing and memory do not depend on them).

- **Surface evaluation** (target ≤ 1.1x): one landscape point through lsx's ``Evaluator`` (parameters set from
  the flat vector, the configured loss on the landscape train subset) against a plain ``torch.no_grad()`` loop
  that calls the same loss on the same batches of the unchanged model.
- **Hessian-vector product** (target ≤ 2.5x a gradient): the Hessian job's loss (``functional_model_loss`` over
  its ``num_examples`` examples in batches of 256) — one product on the gradient graph the job builds once
  (what each Lanczos step costs), and a fresh product (graph included), each against one gradient of the same loss.
- **Memory** (target ≤ 3x): the peak resident memory a fresh Hessian-vector product on one training batch adds,
  against the peak a training step on that batch adds (forward, backward, Adam step); the Hessian job's product
  over its ``num_examples`` is shown beside them (its graph grows with the examples). Each is measured in a fresh
  process after one unmeasured run of the same operation: freed memory is trimmed, the kernel's peak-RSS counter
  reset (``/proc/self/clear_refs``), and the peak minus the resident size before the measured run is reported.

Times are interleaved round by round with the order rotated (``timing.py``).
Usage: ``python benchmarks/bench_byo.py [--repeats 5] [--threads 1] | tee outputs/bench/byo.md``, then
``python benchmarks/update_readme.py outputs/bench/byo.md`` (the ``byo`` block of docs/benchmarks.md).
Needs the ``hf`` extra (``pip install 'lsx[hf]'``).
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing as mp
from pathlib import Path
from typing import Any

import torch
from timing import fmt_ratio, fmt_time, header, interleave, print_block, set_threads

from lsx.training.losses import loss_terms

PRESET = "experiment=byo_transformer"


def preset_parts() -> tuple[dict[str, Any], Any, torch.nn.Module, Any]:
    """(config, data module, model, loss) of the preset, built as a training run builds them."""
    from lsx.config import compose_config, to_container
    from lsx.training.checkpoints import model_from_config
    from lsx.training.losses import build_loss
    from lsx.training.runner import build_data

    cfg = to_container(compose_config([PRESET]))
    dm = build_data(cfg).prepare()
    s = dm.shape
    shape = {"in_channels": s.in_channels, "height": s.height, "width": s.width, "num_classes": s.num_classes}
    torch.manual_seed(0)
    model = model_from_config(cfg["model"], shape)
    return cfg, dm, model, build_loss(cfg.get("loss"))


def hessian_loss(cfg: dict[str, Any], dm: Any, model: torch.nn.Module, loss_fn: Any):
    """The Hessian job's differentiable loss (lsx.jobs.hessian.network_loss) and its flat θ."""
    from lsx.landscape.engine.flat import FlatParams, functional_model_loss

    sub = dm.landscape_subset()
    n = min(int(cfg["analysis"].get("num_examples", 1000)), len(sub.train_x))
    batches = [(sub.train_x[i : min(i + 256, n)], sub.train_y[i : min(i + 256, n)]) for i in range(0, n, 256)]
    flat = FlatParams(model.eval())
    return functional_model_loss(model, flat, batches, loss_fn), flat.get(), n


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _peak_child(what: str, threads: int, out: Any) -> None:
    """In a fresh process: the peak resident memory (MiB) that ``what`` adds above what was resident before it.

    The operation runs once first (code pages, the optimizer's state, one-time allocations), freed memory is
    handed back to the system (``malloc_trim``), the kernel's peak counter is reset, and the second run is measured.
    """
    import ctypes

    set_threads(threads)
    cfg, dm, model, loss_fn = preset_parts()
    batch = next(iter(dm.train_dataloader()))
    if what == "train_step":
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.train()

        def op() -> None:
            opt.zero_grad(set_to_none=True)
            loss_terms(loss_fn(model, batch), len(batch[0]))[0].backward()
            opt.step()

        size = f"one batch of {len(batch[0])} sequences, Adam"
    else:
        from lsx.landscape.curvature.hessian import hvp_function
        from lsx.landscape.engine.flat import FlatParams, functional_model_loss

        if what == "hvp_batch":
            flat = FlatParams(model.eval())
            f, theta = functional_model_loss(model, flat, [batch], loss_fn), flat.get()
            size = f"the same batch of {len(batch[0])} sequences"
        else:
            f, theta, n = hessian_loss(cfg, dm, model, loss_fn)
            size = f"{n} sequences: the Hessian job's num_examples"
        v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(0), dtype=theta.dtype)

        def op() -> None:
            hvp_function(f, theta)(v)

    op()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS counter (VmHWM) to the current size
    before = _rss_kib("VmRSS")
    op()
    out.put((what, (_rss_kib("VmHWM") - before) / 1024, size))


def peak_memory(what: str, threads: int) -> tuple[float, str]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_peak_child, args=(what, threads, q))
    p.start()
    _, mib, size = q.get(timeout=600)
    p.join()
    return mib, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    set_threads(args.threads)
    from lsx.landscape.curvature.hessian import hvp_function
    from lsx.landscape.engine.evaluator import Evaluator

    cfg, dm, model, loss_fn = preset_parts()
    sub = dm.landscape_subset()
    x, y = sub.train_x, sub.train_y
    ev = Evaluator(copy.deepcopy(model), train=(x, y), loss_fn=loss_fn, fuse=False, channels_last=False)
    theta0 = ev.flat.get()
    d = torch.randn(theta0.shape, generator=torch.Generator().manual_seed(1), dtype=theta0.dtype) * 1e-3
    point = theta0 + d
    chunk = ev.chunk
    model.eval()

    @torch.no_grad()
    def plain_loop() -> float:
        total, units = 0.0, 0.0
        for i in range(0, len(x), chunk):
            xb, yb = x[i : i + chunk], y[i : i + chunk]
            loss, _, count = loss_terms(loss_fn(model, (xb, yb)), len(xb))
            total += float(loss) * float(count)
            units += float(count)
        return total / units

    f, theta, n_hess = hessian_loss(cfg, dm, model, loss_fn)
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(2), dtype=theta.dtype)
    hvp = hvp_function(f, theta)

    def gradient() -> torch.Tensor:
        th = theta.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(f(th), th)
        return g

    surface, plain = f"lsx surface point ({len(x)} sequences)", f"plain torch.no_grad() loop ({len(x)} sequences)"
    prod, fresh, grad = "HVP, one product on the built graph", "HVP, fresh (graph + product)", f"gradient ({n_hess} sequences)"
    t = interleave(
        {
            surface: lambda: ev.evaluate_at(point, splits=("train",)),
            plain: plain_loop,
            prod: lambda: hvp(v),
            fresh: lambda: hvp_function(f, theta)(v),
            grad: gradient,
        },
        args.repeats,
        args.warmup,
    )
    step_mib, step_size = peak_memory("train_step", args.threads)
    hvp_mib, hvp_size = peak_memory("hvp_batch", args.threads)
    job_mib, job_size = peak_memory("hvp_job", args.threads)
    s_ratio, p_ratio, f_ratio = t.ratio(surface, plain)[0], t.ratio(prod, grad)[0], t.ratio(fresh, grad)[0]
    params = sum(p.numel() for p in model.parameters())

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    title = header("bench_byo", args.repeats, args.warmup)
    lines = [
        f"byo_transformer: {type(model).__name__}, {params} parameters; sequences of {tuple(x.shape[1:])} tokens; "
        f"evaluator chunk {chunk}; loss {cfg.get('loss', {}).get('_target_', 'cross-entropy')}.",
        "",
        "| contender | median s (min–max) | ratio |",
        "|---|---|---|",
        f"| {surface} | {fmt_time(t, surface)} | {fmt_ratio(t, surface, plain)} of the plain loop |",
        f"| {plain} | {fmt_time(t, plain)} | 1 |",
        f"| {prod} | {fmt_time(t, prod)} | {fmt_ratio(t, prod, grad)} of a gradient |",
        f"| {fresh} | {fmt_time(t, fresh)} | {fmt_ratio(t, fresh, grad)} of a gradient |",
        f"| {grad} | {fmt_time(t, grad)} | 1 |",
        "",
        "| peak memory added (fresh process) | MiB |",
        "|---|---|",
        f"| training step ({step_size}) | {step_mib:.1f} |",
        f"| fresh Hessian-vector product ({hvp_size}) | {hvp_mib:.1f} |",
        f"| fresh Hessian-vector product ({job_size}) | {job_mib:.1f} |",
        "",
        f"- surface evaluation ≤ 1.1x the plain loop: {verdict(s_ratio <= 1.1)} ({s_ratio:.2f}x)",
        f"- Hessian-vector product ≤ 2.5x a gradient: {verdict(p_ratio <= 2.5)} per product on the built graph "
        f"({p_ratio:.2f}x); a fresh one (graph included) {f_ratio:.2f}x",
        f"- HVP memory ≤ 3x a training step's, on the same batch: {verdict(hvp_mib <= 3 * step_mib)} "
        f"({hvp_mib / max(step_mib, 1e-9):.2f}x); the job's HVP over {job_size.split(':')[0]} adds {job_mib:.1f} MiB",
    ]
    print_block("byo", title, lines)


if __name__ == "__main__":
    main()
