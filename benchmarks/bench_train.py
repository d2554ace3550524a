"""Training on CPU: lsx's cached runner vs a plain PyTorch loop on the same work; NCHW vs channels_last.

1. ``lsx.training.runner.train`` on the default config (simple_cnn, digits, 10 epochs) and on
   ``model=resnet20`` (fewer epochs), into a fresh cache each round, vs :func:`plain_loop`, the same
   work written as a plain loop. Both sides:
   - seed everything, build and split the data, build the model from the seed (same init);
   - train ``training.epochs`` epochs with the configured optimizer and per-step LR schedule (and
     gradient clipping when set), in the runner's memory format (channels_last where
     ``channels_last_safe()``), on the runner's batches: slices of the train split in the order of the
     per-epoch permutation of (seed, epoch); the epoch's train loss and accuracy summed per step;
   - after each epoch, a validation pass over the val split (batches of ``data.eval_batch_size``, in
     eval mode without autograd) and a learning-curve row (epoch, train/val loss and accuracy, LR);
   - save a checkpoint at epoch 0 (the initialization) and at the final epoch;
   - evaluate the final model on train, val and test in inference mode.
   The runner adds what makes it a cache: config hashing, a lock, a config/summary/metrics.csv written
   atomically, checkpoints carrying their config, resume points (``training.resume_every``,
   ``resume_min_interval_s``: none in a run shorter than 30 s). Interleaved rounds, order rotated (``timing.py``).
2. Throughput of full Adam steps on synthetic 32x32x3 batches, NCHW vs channels_last.
Usage: ``python benchmarks/bench_train.py [--repeats R] [--threads T] [--resnet-epochs E]``.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from timing import fmt_ratio, fmt_time, header, interleave, print_block, set_threads, table

from lsx.models import build_model


def stepper(name: str, batch: int, steps: int, channels_last: bool, size: int = 32):
    """A function running ``steps`` Adam steps of a fixed model/batch (state persists across calls)."""
    torch.manual_seed(0)
    model = build_model(name, 3, size, 10)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 10, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def run() -> None:
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()

    return run


def plain_loop(overrides: list[str]):
    """The runner's work written as a plain loop (a closure; each call trains from scratch)."""
    import csv
    import math
    import tempfile

    import lightning as L

    from lsx.config import compose_config, to_container
    from lsx.training.checkpoints import model_from_config
    from lsx.training.optim import build_optimizer, build_scheduler
    from lsx.training.runner import build_data, channels_last_safe, evaluate_model

    c = to_container(compose_config(overrides))

    def run() -> dict:
        seed, epochs = int(c["seed"]), int(c["training"]["epochs"])
        clip = c["training"].get("gradient_clip_val")
        L.seed_everything(seed, workers=True, verbose=False)
        dm = build_data(c).prepare()
        s = dm.shape
        shape = {"in_channels": s.in_channels, "height": s.height, "width": s.width, "num_classes": s.num_classes}
        model = model_from_config(c["model"], shape)
        cl = bool(c["training"].get("channels_last", True)) and channels_last_safe()
        fmt = torch.channels_last if cl else torch.contiguous_format
        model = model.to(memory_format=fmt)

        def as_input(xb: torch.Tensor) -> torch.Tensor:
            return xb.contiguous(memory_format=fmt) if xb.dim() == 4 else xb

        x, y = dm.split("train")
        vx, vy = dm.split("val")
        bs, ebs = dm.batch_size, dm.eval_batch_size
        opt = build_optimizer(c["optimizer"], model.parameters())
        sched = build_scheduler(c["scheduler"], opt, math.ceil(len(x) / bs), epochs)
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            torch.save(model.state_dict(), f"{tmp}/epoch_0.pt")
            for epoch in range(epochs):
                model.train()
                g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
                perm = torch.randperm(len(x), generator=g)
                loss_sum = torch.zeros((), dtype=torch.float64)
                hits = torch.zeros((), dtype=torch.long)
                for i in range(0, len(x), bs):
                    idx = perm[i : i + bs]
                    xb, yb = as_input(x[idx]), y[idx]
                    opt.zero_grad()
                    out = model(xb)
                    loss = F.cross_entropy(out, yb)
                    loss.backward()
                    if clip:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), float(clip))
                    opt.step()
                    sched.step()
                    with torch.no_grad():
                        loss_sum += loss.detach().double() * len(yb)
                        hits += (out.argmax(1) == yb).sum()
                row = {
                    "epoch": epoch + 1,
                    "train/loss": float(loss_sum) / len(x),
                    "train/acc": int(hits) / len(x),
                    "lr": opt.param_groups[0]["lr"],
                }
                if len(vx):  # evaluate_model: eval mode, inference mode, batches of data.eval_batch_size
                    v = evaluate_model(model, as_input(vx), vy, chunk=ebs)
                    row.update({"val/loss": v["loss"], "val/acc": v["acc"]})
                rows.append(row)
            torch.save(model.state_dict(), f"{tmp}/final.pt")
            with open(f"{tmp}/metrics.csv", "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=["epoch", "train/loss", "train/acc", "val/loss", "val/acc", "lr"])
                w.writeheader()
                w.writerows(rows)
        metrics = {}
        for split in ("train", "val", "test"):  # evaluate_model runs in inference mode
            sx, sy = dm.split(split)
            if len(sx):
                metrics.update({f"{split}_{k}": v for k, v in evaluate_model(model, as_input(sx), sy).items()})
        return metrics

    return run


def lsx_runner(overrides: list[str]):
    import tempfile

    from lsx.config import compose_config, to_container
    from lsx.training.runner import train

    base = to_container(compose_config(overrides))

    def run():
        with tempfile.TemporaryDirectory() as tmp:
            c = {**base, "paths": {**base["paths"], "cache_dir": tmp}}
            return train(c, progress=False).summary

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resnet-epochs", type=int, default=2)
    args = ap.parse_args()
    set_threads(args.threads)
    title = header("bench_train", args.repeats, args.warmup)
    import logging

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    fit_rows = []
    for name, ov in (
        ("simple_cnn / digits, default config (10 epochs)", []),
        (f"resnet20 / digits, {args.resnet_epochs} epochs", ["model=resnet20", f"training.epochs={args.resnet_epochs}"]),
    ):
        ov = ov + ["logger=csv"]
        t = interleave({"lsx runner": lsx_runner(ov), "plain loop": plain_loop(ov)}, args.repeats, args.warmup)
        acc_lsx, acc_plain = t.results["lsx runner"].get("test_acc"), t.results["plain loop"]["test_acc"]
        fit_rows.append(
            f"| {name} | {fmt_time(t, 'lsx runner')} | {fmt_time(t, 'plain loop')} | "
            f"{fmt_ratio(t, 'lsx runner', 'plain loop')} | {acc_lsx:.4f} / {acc_plain:.4f} |"
        )
    rows = []
    for name in ("simple_cnn", "resnet20"):
        steps = args.steps if name == "simple_cnn" else max(3, args.steps // 3)
        t = interleave(
            {"NCHW": stepper(name, args.batch, steps, False), "channels_last": stepper(name, args.batch, steps, True)},
            args.repeats,
            args.warmup,
        )
        imgs = args.batch * steps
        rows.append(
            f"| {name} | {imgs / t.median('NCHW'):.0f} | {imgs / t.median('channels_last'):.0f} | "
            f"{fmt_ratio(t, 'NCHW', 'channels_last')} | {fmt_time(t, 'channels_last')} |"
        )
    lines = [
        *table(["training", "lsx runner s", "plain loop s", "lsx ÷ plain", "test acc lsx / plain"], fit_rows),
        "",
        f"Adam steps on 32x32x3 batches of {args.batch}:",
        "",
        *table(["model", "NCHW img/s", "channels_last img/s", "NCHW time ÷ channels_last", "channels_last s per round"], rows),
    ]
    print_block("train", title, lines)


if __name__ == "__main__":
    main()
