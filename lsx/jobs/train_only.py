"""``analysis=train``: just train the optima of ``optima.seeds`` (useful to pre-fill the cache)."""

from __future__ import annotations

from .base import JobContext, JobOutput, register_job


@register_job("train")
def run(ctx: JobContext) -> JobOutput:
    runs = ctx.optima()
    metrics = {f"seed{r.seed}_{k}": v for r in runs for k, v in r.summary.items()}
    return JobOutput(metrics=metrics, extra={"training_runs": [str(r.run_dir) for r in runs]})
