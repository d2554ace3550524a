"""``python -m lsx.train [overrides]``: train one model (cached by config hash, resumable).

Writes the run directory contract (config.yaml, results.json, learning-curve plot, DONE) and
points to the cached checkpoints. Sweep ``seed=0,1,2 -m`` to get independent optima.
"""

from __future__ import annotations

import shutil

import hydra
from omegaconf import DictConfig

from lsx.cli.app import clean_errors, prepare
from lsx.config import CONF_DIR
from lsx.utils.io import atomic_path


def run_training_job(cfg: DictConfig) -> dict:
    from lsx.tracking.results import torch_threads, write_results
    from lsx.training.runner import run_dir_for, train

    c, run_dir = prepare(cfg)
    cached = (run_dir_for(c)[0] / "DONE").exists()
    run = train(c)
    if run is None:  # a non-zero DDP rank
        return {}
    curve = run.learning_curve()
    artifacts = {}
    if curve:
        # drawn once into the cached run, then copied: a cache hit needs no matplotlib (~0.4 s of imports)
        drawn = run.run_dir / "learning_curve.png"
        if not drawn.exists():
            from lsx.plots.training import plot_learning_curve

            try:
                plot_learning_curve(curve, drawn, title=run.run_dir.name)
            except OSError:  # a read-only shared cache: draw it here instead
                drawn = plot_learning_curve(curve, run_dir / "learning_curve.png", title=run.run_dir.name)
        if drawn != run_dir / "learning_curve.png":
            with atomic_path(run_dir / "learning_curve.png") as tmp:
                shutil.copyfile(drawn, tmp)
        artifacts["learning_curve"] = "learning_curve.png"
    results = write_results(
        run_dir,
        "train",
        c,
        run.summary,
        artifacts,
        # torch_threads: what trained the weights (a cache hit may run at another count, recorded beside it)
        extra={
            "training_run": str(run.run_dir),
            "config_hash": run.config_hash,
            "cached": cached,
            "torch_threads": run.torch_threads,
            "torch_threads_this_process": torch_threads(),
            "checkpoints": {str(k): str(v) for k, v in run.checkpoints.items()},
        },
    )
    if cached:
        from lsx.tracking.wandb_log import relog_training

        relog_training(c, run_dir, run.run_dir, results)
    return results


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
@clean_errors
def main(cfg: DictConfig) -> None:
    res = run_training_job(cfg)
    if res:
        m = res["metrics"]
        print(
            f"trained {res['training_run']}: test acc {m.get('test_acc', float('nan')):.4f}, "
            f"test loss {m.get('test_loss', float('nan')):.4f}"
        )


def cli() -> None:
    """``python -m lsx.train``: checks that must run before Hydra, then the entry point."""
    from lsx.cli.checks import exit_on_unknown_keys

    exit_on_unknown_keys()
    main()
