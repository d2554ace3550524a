"""One finished job as the claims see it: its resolved config, its metrics and the optima it used.

Read only from the job directory's output contract (config.yaml, results.json), so a claim can be
re-evaluated from the files alone, long after the run.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lsx.tracking.results import with_training_outcome

# per-optimum fields of results.json "training" (one entry per trained run the job used; documented in
# lsx.tracking.results): the run's summary, how it stopped, its target, and the loss the analysis measured
TRAINING_FIELDS = (
    "seed",
    "run_dir",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "epochs_run",
    "steps",
    "stopped_by",
    "target_train_loss",
    "reached_target",
    "stop_train_loss",
    "analysis_train_loss",
    "analysis_bn",
    "analysis_epoch",
)
_NUMERIC_TRAINING = (
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "epochs_run",
    "steps",
    "stop_train_loss",
    "analysis_train_loss",
)


class MissingKey(KeyError):
    """A claim names a key (metric, config path) that a job does not have."""

    def __str__(self) -> str:  # KeyError quotes its message; keep the sentence readable
        return str(self.args[0]) if self.args else "missing key"


_MISSING = object()


@dataclass
class JobRecord:
    config: dict[str, Any]
    metrics: dict[str, Any]
    seed: int
    job_dir: Path
    training: list[dict[str, Any]] = field(default_factory=list)
    job: str = ""
    elapsed_s: float | None = None
    code_version: str = ""  # of the code that computed the job (a cached job may predate the report's code)
    code_fingerprint: str = ""  # of the source files the job depends on (lsx.utils.fingerprint)

    @classmethod
    def from_dir(cls, job_dir: str | Path) -> "JobRecord":
        job_dir = Path(job_dir)
        results_path, config_path = job_dir / "results.json", job_dir / "config.yaml"
        if not results_path.is_file():
            raise ValueError(f"{job_dir} is not a finished job (no results.json)")
        results = json.loads(results_path.read_text())
        config = yaml.safe_load(config_path.read_text()) if config_path.is_file() else {}
        seed = results.get("seed", config.get("seed", 0))
        return cls(
            config=config or {},
            metrics=dict(results.get("metrics") or {}),
            seed=int(seed if seed is not None else 0),
            job_dir=job_dir,
            training=[with_training_outcome(t) for t in results.get("training") or []],
            job=str(results.get("job", "")),
            elapsed_s=results.get("elapsed_s"),
            code_version=str(results.get("code_version") or ""),
            code_fingerprint=str(results.get("code_fingerprint") or ""),
        )

    def get(self, key: str, default: Any = _MISSING) -> Any:
        """``metrics.x`` → a metric (dotted for nested dicts); ``training.<field>`` → the mean of that
        field over the job's optima (fields: train_loss, train_acc, test_loss, test_acc, epochs_run,
        steps, stop_train_loss, analysis_train_loss);
        ``seed`` → the seed; anything else → a dotted path into the resolved config."""
        try:
            return self._get(key)
        except MissingKey:
            if default is _MISSING:
                raise
            return default

    def _get(self, key: str) -> Any:
        if key == "seed":
            return self.seed
        head, _, rest = key.partition(".")
        if head == "metrics":
            return _dig(
                self.metrics,
                rest,
                key,
                f"job {self.job_dir.name} has no metric {rest!r}; its metrics: " f"{', '.join(sorted(self.metrics)[:40])}",
            )
        if head == "training" and rest in _NUMERIC_TRAINING:
            values = [v for v in (t.get(rest) for t in self.training) if v is not None]
            if not values:
                raise MissingKey(
                    f"job {self.job_dir.name} records no trained optimum with {rest!r} (results.json 'training' is empty)"
                )
            return float(sum(values) / len(values))
        return _dig(self.config, key, key, f"job {self.job_dir.name} has no config key {key!r}", none_is_missing=False)


def _dig(tree: Any, path: str, key: str, message: str, none_is_missing: bool = True) -> Any:
    node = tree
    for part in path.split(".") if path else []:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            raise MissingKey(message)
    if none_is_missing and (node is None or (isinstance(node, float) and math.isnan(node))):
        raise MissingKey(message.replace("has no", "has an empty", 1))
    return node
