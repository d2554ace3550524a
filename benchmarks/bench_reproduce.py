"""Per-job fixed costs of ``lsx.reproduce`` vs the job's compute, on a cheap preset (quickstart, one torch thread).

Why: doubling the units doubles the jobs, so what each job costs besides its computation decides whether
``make reproduce`` (both unit sets) fits its 2-hour budget on 2 cores, and whether worker processes
(which pay the imports once, not per job) are worth it. Stages, each timed in its own way:

- imports: a fresh interpreter doing what a worker does once (``init_worker`` + the job and training
  modules) vs ``python -c "import torch"`` (subprocesses, interleaved with the order rotated);
- per job, in this process (interleaved rounds): composing the job's config, loading its data, building a
  Lightning ``Trainer`` as the runner does, a cold job (training its optimum + the 2D surface, fresh cache
  each round) and the same job when finished (a cache hit).

The compute share is the cold job minus the per-job fixed costs it contains (compose, data, Trainer).
Usage: ``python benchmarks/bench_reproduce.py [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from timing import fmt_time, header, interleave, print_block, run_python, set_threads

WORKER_IMPORTS = (
    "from lsx.cli.reproduce import init_worker; init_worker(); "
    "import lsx.cli.analyze, lsx.jobs.registry, lsx.training.runner, lsx.claims.report"
)


def fresh(code: str, env: dict[str, str]):
    return lambda: run_python(["-c", code], env)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--preset", default="quickstart", help="a preset whose first job is cheap (default quickstart)")
    args = ap.parse_args()
    set_threads(1)  # as in the reproduce workers
    title = header("bench_reproduce", args.repeats, args.warmup)
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, LSX_CACHE_DIR=f"{tmp}/cache", LSX_OUTPUT_DIR=f"{tmp}/outputs", WANDB_MODE="offline")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), env.get("PYTHONPATH", "")) if p)
        imports = interleave(
            {
                "python -c 'import torch'": fresh("import torch", env),
                "worker imports (once per worker)": fresh(WORKER_IMPORTS, env),
            },
            args.repeats,
            args.warmup,
        )
        os.environ.update(LSX_CACHE_DIR=env["LSX_CACHE_DIR"], LSX_OUTPUT_DIR=env["LSX_OUTPUT_DIR"], WANDB_MODE="offline")
        exec(WORKER_IMPORTS, {})
        rows, total = per_job(args.preset, Path(tmp), args.repeats, args.warmup)
    lines = [
        f"| stage ({args.preset}, first discovery job) | median s (min–max) | share of a cold job |",
        "|---|---|---|",
    ]
    for name in imports.seconds:
        lines.append(f"| {name} | {fmt_time(imports, name)} | — |")
    cold = rows.median("cold job (train + surface)")
    for name in rows.seconds:
        lines.append(f"| {name} | {fmt_time(rows, name)} | {rows.median(name) / cold:.0%} |")
    fixed = sum(rows.median(n) for n in ("compose config", "load data", "build Trainer"))
    lines += [
        "",
        f"Per-job fixed cost inside a worker: {fixed:.2f} s ({fixed / cold:.0%} of a cold job); compute "
        f"≈ {cold - fixed:.2f} s. Imports are paid once per worker process, not per job ({total} jobs timed).",
    ]
    print_block("reproduce", title, lines)


def per_job(preset: str, tmp: Path, repeats: int, warmup: int):
    import lightning as L

    from lsx.cli.reproduce import compose_point, make_plan, run_point
    from lsx.training.runner import build_data

    point = make_plan(preset).points[0]
    c = compose_point(point)
    counter = {"n": 0}

    def cold() -> None:  # a fresh cache and output root: the optimum trains, the job runs
        counter["n"] += 1
        root = tmp / f"cold{counter['n']}"
        os.environ.update(LSX_CACHE_DIR=str(root / "cache"), LSX_OUTPUT_DIR=str(root / "outputs"))
        entry = run_point(point, str(root / "run"))
        if entry["status"] != "ran":
            raise RuntimeError(f"cold job: {entry}")

    def cached() -> None:
        entry = run_point(point, str(tmp / "cached_run"))
        if entry["status"] != "cached":
            raise RuntimeError(f"cached job: {entry}")

    def trainer() -> None:
        L.Trainer(
            max_epochs=1,
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            deterministic=True,
            default_root_dir=str(tmp / "trainer"),
        )

    cold()  # the job the cache-hit contender finds
    os.environ.update(LSX_CACHE_DIR=str(tmp / "cold1" / "cache"), LSX_OUTPUT_DIR=str(tmp / "cold1" / "outputs"))
    contenders = {
        "compose config": lambda: compose_point(point),
        "load data": lambda: build_data(c).prepare(),
        "build Trainer": trainer,
        "cold job (train + surface)": cold,
        "finished job (cache hit)": cached,
    }

    def keep_cache(fn):  # the cold job moves the roots: restore them for the others
        def run():
            out = fn()
            os.environ.update(LSX_CACHE_DIR=str(tmp / "cold1" / "cache"), LSX_OUTPUT_DIR=str(tmp / "cold1" / "outputs"))
            return out

        return run

    t = interleave({k: keep_cache(v) for k, v in contenders.items()}, repeats, warmup)
    return t, counter["n"]


if __name__ == "__main__":
    main()
