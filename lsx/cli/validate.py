"""Check a resolved config before anything is created or trained.

Why here and not where each value is used: a bad value found after training (or after a
surface was evaluated) costs the researcher the run and leaves half-made cache directories.
Each check raises ``ValueError`` with one line naming the key, the value and what is valid.
"""

from __future__ import annotations

import logging
import numbers
from pathlib import Path
from typing import Any

import yaml

from lsx.config import CONF_DIR
from lsx.training.checks import check_resume_schedule

log = logging.getLogger("lsx")

_EMBEDDED_DATA = ("digits", "mnist1d", "synthetic")  # generated or shipped: never need torchvision
# analyses whose scalar ``num`` is the side of a 2D contour grid (a contour needs >= 2 per side)
_GRID_NUM_KEYS = {"plane": "num", "pca_trajectory": "num"}
# jobs that take a parameter subset (analysis.params); the per-block table (analysis.blocks) is the hessian job's
_SUBSET_JOBS = ("surface2d", "curves1d", "plane", "interpolation", "tunnel_width", "radial_tunnels", "sharpness", "hessian")


def validate_config(c: dict[str, Any]) -> None:
    """Refuse a config whose values cannot give a valid run; no-op for a good one."""
    _check_int("seed", c.get("seed"))
    if c.get("threads") is not None:
        _check_int("threads", c["threads"], minimum=1)
    from lsx.utils.fingerprint import check_stale_mode

    check_stale_mode((c.get("cache") or {}).get("stale", "warn"))
    _check_seed_list("optima.seeds", (c.get("optima") or {}).get("seeds"))
    _check_training(c.get("training") or {})
    _check_names(c)
    _check_optimizer(c.get("optimizer") or {})
    _check_data(c.get("data") or {})
    _check_model(c.get("model") or {})
    _check_targets(c)
    _warn_schedule(c)
    _check_trainer(c.get("trainer") or {})
    if c.get("analysis"):
        _check_grids(c["analysis"])
        _check_mconnector(c)
        _check_hessian_counts(c["analysis"])


def _check_mconnector(c: dict[str, Any]) -> None:
    """An m-connector spans m+1 optima (the job checks it too, for callers that skip this check)."""
    a = c["analysis"]
    if a.get("job") != "mconnector" or a.get("m") is None:
        return
    _check_int("analysis.m", a["m"], minimum=1)
    seeds = list((c.get("optima") or {}).get("seeds") or [])
    if len(seeds) < a["m"] + 1:
        raise ValueError(f"an m-connector with m={a['m']} needs m+1={a['m'] + 1} optima; optima.seeds has {len(seeds)}: {seeds}")


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _check_int(key: str, value: Any, minimum: int | None = None) -> None:
    if not _is_int(value):
        raise ValueError(f"{key} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{key} must be >= {minimum}, got {value}")


def _check_seed_list(key: str, seeds: Any) -> None:
    """A list of training seeds: integers, each once (a repeated seed is one optimum counted twice)."""
    if seeds is None:
        return
    if not isinstance(seeds, (list, tuple)):
        raise ValueError(f"{key} must be a list of integer seeds, got {seeds!r}")
    for s in seeds:
        _check_int(key, s)
    dup = sorted({s for s in seeds if list(seeds).count(s) > 1})
    if dup:
        raise ValueError(f"{key} repeats seed(s) {dup} in {list(seeds)}: each optimum must be a different training seed")


def _positive_number(key: str, value: Any, allow_zero: bool = False) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(f"{key} must be a number {'>=' if allow_zero else '>'} 0, got {value!r}")


def _check_optimizer(o: dict[str, Any]) -> None:
    if "lr" in o:
        _positive_number("optimizer.lr", o["lr"])
    if o.get("weight_decay") is not None:
        _positive_number("optimizer.weight_decay", o["weight_decay"], allow_zero=True)
    m = o.get("momentum")
    if m is not None and not (isinstance(m, numbers.Real) and not isinstance(m, bool) and 0 <= m < 1):
        raise ValueError(f"optimizer.momentum must be a number in [0, 1), got {m!r}")


def _check_data(d: dict[str, Any]) -> None:
    for key in ("batch_size", "eval_batch_size"):
        if d.get(key) is not None:
            _check_int(f"data.{key}", d[key], minimum=1)
    if d.get("name") not in _EMBEDDED_DATA:  # imported only then: a cache hit on embedded data stays light
        from lsx.data.torchvision_sets import _SETS, _import_torchvision_datasets

        if d.get("name") in _SETS:
            _import_torchvision_datasets()  # DatasetUnavailable: one line saying how to get torchvision or which data to use


def _check_model(m: dict[str, Any]) -> None:
    p = m.get("dropout")
    if p is not None and not (isinstance(p, numbers.Real) and not isinstance(p, bool) and 0 <= p < 1):
        raise ValueError(f"model.dropout must be a probability in [0, 1), got {p!r}")
    w = m.get("width")
    if w is not None:
        _positive_number("model.width", w)


def _check_targets(c: dict[str, Any]) -> None:
    """``model``/``data``/``loss`` ``_target_``s import and are callable (lsx.models.target); what a target builds is
    checked when it is built, still before training (a non-module model, a loss that is not a finite scalar)."""
    keys = [k for k in ("model", "data", "loss") if isinstance(c.get(k), dict) and c[k].get("_target_")]
    if c.get("loss") is not None and not (isinstance(c["loss"], dict) and c["loss"].get("_target_")):
        raise ValueError(f"loss must be null (cross-entropy) or have a _target_ (e.g. loss=next_token), got {c['loss']!r}")
    if keys:
        from lsx.models.target import check_target

        for k in keys:
            check_target(c[k], k)


def _check_training(t: dict[str, Any]) -> None:
    if "epochs" in t:
        _check_int("training.epochs", t["epochs"], minimum=1)
    if t.get("checkpoint_every") is not None:
        _check_int("training.checkpoint_every", t["checkpoint_every"], minimum=1)
    check_resume_schedule(t.get("resume_every"), t.get("resume_min_interval_s", 0))


def _check_names(c: dict[str, Any]) -> None:
    from lsx.training.optim import OPTIMIZERS, SCHEDULERS

    for key, valid in (("optimizer", OPTIMIZERS), ("scheduler", SCHEDULERS)):
        name = (c.get(key) or {}).get("name")
        if name is not None and name not in valid:
            raise ValueError(f"unknown {key}.name {name!r}; valid {key}s: {', '.join(valid)}")


def _warn_schedule(c: dict[str, Any]) -> None:
    """A step schedule whose milestones all lie past the last epoch never lowers the LR (a warning:
    a shortened preset may mean it)."""
    sched, epochs = c.get("scheduler") or {}, (c.get("training") or {}).get("epochs")
    if sched.get("name") == "step" and _is_int(epochs) and sched.get("milestones"):
        if min(int(m) for m in sched["milestones"]) >= epochs:
            log.warning(
                "scheduler.milestones %s are all >= training.epochs=%d: the learning rate never drops "
                "(e.g. scheduler.milestones=[%d,%d])",
                list(sched["milestones"]),
                epochs,
                epochs // 2,
                3 * epochs // 4,
            )


def trainer_keys() -> list[str]:
    """Every key some ``conf/trainer/*.yaml`` defines: the options lsx passes to Lightning."""
    keys: set[str] = set()
    for p in Path(CONF_DIR, "trainer").glob("*.yaml"):
        keys |= set((yaml.safe_load(p.read_text()) or {}).keys())
    return sorted(keys)


def _check_trainer(tr: dict[str, Any]) -> None:
    valid = trainer_keys()
    unknown = sorted(set(tr) - set(valid))
    if unknown:
        hint = " (for a quick check use debug=fast: 1 epoch on 128 examples)" if "fast_dev_run" in unknown else ""
        raise ValueError(
            f"trainer.{unknown[0]} is not an lsx trainer option (lsx builds the Lightning Trainer itself and would "
            f"ignore it){hint}; valid trainer keys: {', '.join(valid)}"
        )
    accel = str(tr.get("accelerator", "cpu"))
    _check_precision(tr.get("precision", "32-true"), accel)
    if accel in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            from lsx.distributed import launch_env

            # under torchrun/srun a sharded job refuses multi-process trainers: suggest ddp_cpu only to one process
            alt = "" if launch_env() is not None else " (or trainer=ddp_cpu for the DDP code path on CPU)"
            raise ValueError(f"trainer.accelerator={accel} but no CUDA GPU is visible on this machine; use trainer=cpu{alt}")
        devices = tr.get("devices", 1)
        if _is_int(devices) and devices > torch.cuda.device_count():
            raise ValueError(f"trainer.devices={devices} but only {torch.cuda.device_count()} GPU(s) are visible")


_PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true")


def _check_precision(precision: Any, accel: str) -> None:
    """A precision Lightning knows and the device supports (Lightning would silently turn fp16 AMP on CPU into bf16)."""
    from lsx.config import normalized_precision

    p = normalized_precision(precision)
    if p not in _PRECISIONS:
        raise ValueError(f"trainer.precision={precision!r} is not a precision lsx trains with; valid: {', '.join(_PRECISIONS)}")
    import torch

    gpu = accel in ("gpu", "cuda") or (accel == "auto" and torch.cuda.is_available())
    if p.startswith("16") and not gpu:
        raise ValueError(f"trainer.precision={p} needs a CUDA GPU (fp16); on CPU use bf16-mixed or 32-true")
    if p.startswith("bf16") and gpu and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise ValueError(
            f"trainer.precision={p}: this GPU ({torch.cuda.get_device_name()}) has no bfloat16; use 16-mixed or 32-true"
        )


def _check_grids(a: dict[str, Any]) -> None:
    """Axis specs ({min, max, num}) are valid; 2D grids have at least 2 points per side."""
    from lsx.landscape.engine.grids import axis_from_spec

    for key, spec in a.items():
        if isinstance(spec, dict) and {"min", "max", "num"} & set(spec):
            axis_from_spec(spec, name=f"analysis.{key}")
    center = a.get("center_ckpt")
    if center and not Path(str(center)).is_file():
        raise ValueError(
            f"analysis.center_ckpt: no checkpoint file at {center} "
            "(give an lsx epoch_*.pt or a state dict: .pt, .safetensors, Lightning .ckpt)"
        )
    sides = [k for k in ("x", "y") if isinstance(a.get(k), dict)]
    if len(sides) == 2:
        for k in sides:
            if int(a[k]["num"]) < 2:
                raise ValueError(f"analysis.{k}.num must be >= 2 for a 2D surface, got {a[k]['num']}; e.g. analysis.{k}.num=21")
    if "seeds" in a:
        _check_seed_list("analysis.seeds", a["seeds"])
    if "align" in a:  # the jobs' own check, before anything is trained; costs ~10 ms (torch is imported by now)
        from lsx.landscape.permutation.modes import check_align

        check_align(a["align"])
    if "workers" in a:
        _check_int("analysis.workers", a["workers"], minimum=1)
    if a.get("points_per_pass") is not None:
        _check_int("analysis.points_per_pass", a["points_per_pass"], minimum=1)
    _check_params(a)
    key = _GRID_NUM_KEYS.get(str(a.get("job")))
    if key and key in a:
        _check_int(f"analysis.{key}", a[key], minimum=2)


def _check_hessian_counts(a: dict[str, Any]) -> None:
    """The Hessian job's counts, before any training (the bound by the parameter count needs the model: the job checks it)."""
    if a.get("job") != "hessian":
        return
    minimum = {"k": 1, "k_bottom": 0, "trace_samples": 1, "slq_probes": 0, "slq_steps": 1, "num_examples": 1}
    for key, low in minimum.items():
        if a.get(key) is not None:
            _check_int(f"analysis.{key}", a[key], minimum=low)


def _check_params(a: dict[str, Any]) -> None:
    """``analysis.params`` is {include, exclude} of glob lists on a job that takes it; ``analysis.blocks`` is depth<N> or
    globs on the hessian job. Whether the globs match the model's names is checked once the model is built
    (lsx.jobs.landscape_common.check_param_subset), still before any training."""
    from lsx.landscape.engine.subset import check_blocks, glob_list, is_everything

    job, params = str(a.get("job")), a.get("params")
    if params is not None:
        if not isinstance(params, dict) or set(params) - {"include", "exclude"}:
            raise ValueError(f"analysis.params must be {{include: [globs], exclude: [globs]}}, got {params!r}")
        glob_list(params.get("include"), "analysis.params.include")
        glob_list(params.get("exclude"), "analysis.params.exclude")
        if job not in _SUBSET_JOBS and not is_everything(params.get("include"), params.get("exclude")):
            raise ValueError(f"analysis.params is not supported by analysis={job}; jobs that take it: {', '.join(_SUBSET_JOBS)}")
    if a.get("blocks") is not None:
        if job != "hessian":
            raise ValueError(f"analysis.blocks (the per-block Hessian table) belongs to analysis=hessian, not analysis={job}")
        check_blocks(a["blocks"])
