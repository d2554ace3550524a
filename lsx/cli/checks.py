"""Checks of the command line that must run before Hydra does.

Hydra reports a misspelt key as "Key 'epochz' is not in struct", creates the run directory and
launches sweep jobs before lsx sees the config, and prints ``--cfg job`` before lsx applies the
experiment's scale preset. So these run in ``__main__`` first: an unknown key lists the valid
ones, an unusable launcher or an unwritable output directory is one line, and ``--cfg job``
prints the config the job will really run. Group choices (model=..., data=...) are left to
Hydra, whose message already lists the available options.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

from omegaconf import OmegaConf

_FLAGS_WITH_VALUE = (
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--info",
    "-i",
    "--experimental-rerun",
)


def _overrides(argv: list[str]) -> list[str]:
    """The key=value overrides of a command line (Hydra's flags and their values removed)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in _FLAGS_WITH_VALUE:
            skip = True
        elif not a.startswith("-") and "=" in a:
            out.append(a)
    return out


def _group_names() -> set[str]:
    from lsx.config import CONF_DIR

    return {p.name for p in Path(CONF_DIR).iterdir() if p.is_dir()}


def unknown_key_message(argv: list[str]) -> str | None:
    args = _overrides(argv)
    keys = [a.split("=", 1)[0] for a in args if not a.startswith(("+", "~"))]
    keys = [k for k in keys if not k.startswith("hydra.") and "/" not in k]
    groups = _group_names()
    dotted = [k for k in keys if "." in k]
    top = [k for k in keys if "." not in k and k not in groups]
    if not dotted and not top:
        return None
    group_args = [a for a in args if "." not in a.split("=", 1)[0] and a.split("=", 1)[0].lstrip("+") in groups]
    from lsx.config import _compose

    try:
        cfg = _compose(group_args)
    except Exception:  # let Hydra itself report bad group choices
        return None
    valid_top = ", ".join(k for k in cfg.keys() if k != "hydra")
    for key in top:
        if key not in cfg:
            return f"unknown key {key!r}; valid top-level keys: {valid_top} (config groups: {', '.join(sorted(groups))})"
    for key in dotted:
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent, default=None) if parent else cfg
        if node is None:
            return f"unknown key {key!r}: no config node {parent!r}; valid top-level keys: {valid_top}"
        if OmegaConf.is_dict(node) and leaf not in node:
            return f"unknown key {key!r}; valid keys under {parent!r}: {', '.join(str(k) for k in node.keys())}"
    return None


def launcher_message(argv: list[str]) -> str | None:
    """A sweep launcher that cannot start here (no plugin, or SLURM without sbatch)."""
    if not any(a in ("-m", "--multirun") for a in argv):
        return None
    launcher = next((a.split("=", 1)[1] for a in argv if a.lstrip("+").startswith("hydra/launcher=")), None)
    if launcher is None:
        return None
    base = _launcher_base(launcher)
    plugin = {
        "submitit_slurm": "hydra_plugins.hydra_submitit_launcher",
        "submitit_local": "hydra_plugins.hydra_submitit_launcher",
        "joblib": "hydra_plugins.hydra_joblib_launcher",
    }.get(base)
    if plugin and importlib.util.find_spec(plugin) is None:
        return f"hydra/launcher={launcher} needs its Hydra plugin; pip install -e '.[launchers]'"
    if base == "submitit_slurm" and shutil.which("sbatch") is None:
        return (
            f"hydra/launcher={launcher} submits jobs with SLURM's sbatch, which is not on PATH here; run the sweep "
            "on a SLURM login node, or use hydra/launcher=joblib_local for parallel jobs on this machine"
        )
    return None


def _launcher_base(launcher: str) -> str:
    """The Hydra plugin launcher an lsx launcher preset extends (``slurm_multigpu`` -> ``submitit_slurm``): the
    first entry of its defaults list; a plugin's own name otherwise."""
    from lsx.config import CONF_DIR

    path = Path(CONF_DIR) / "hydra" / "launcher" / f"{launcher}.yaml"
    if not path.is_file():
        return launcher
    import yaml

    defaults = (yaml.safe_load(path.read_text()) or {}).get("defaults") or []
    first = next((d for d in defaults if isinstance(d, str) and d != "_self_"), None)
    return str(first) if first else launcher


def output_dir_message(argv: list[str]) -> str | None:
    """Hydra creates the run directory under ``paths.output_root`` before lsx runs: check it is writable."""
    args = _overrides(argv)
    if any(a.startswith(("hydra.run.dir=", "hydra.sweep.dir=")) for a in args):
        return None
    root = next((a.split("=", 1)[1] for a in args if a.lstrip("+").startswith("paths.output_root=")), None)
    root = Path(root or os.environ.get("LSX_OUTPUT_DIR") or "outputs").absolute()
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        with tempfile.TemporaryFile(dir=probe) as fh:
            fh.write(b"\0" * 65536)  # Hydra's own files need a few blocks: a full disk fails here
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as err:
        return (
            f"output directory {root} is not writable ({err.strerror}); free space or choose another with "
            "paths.output_root=... or LSX_OUTPUT_DIR"
        )
    return None


def print_scaled_job_config(argv: list[str]) -> bool:
    """``--cfg job`` with a scale preset: print the config the job really runs (Hydra would print it
    before the preset is applied). Returns whether it printed; other ``--cfg`` uses go to Hydra."""
    cfg_type = None
    for i, a in enumerate(argv):
        if a in ("--cfg", "-c") and i + 1 < len(argv):
            cfg_type = argv[i + 1]
        elif a.startswith("--cfg="):
            cfg_type = a.split("=", 1)[1]
    if cfg_type != "job" or any(a in ("-m", "--multirun", "-p", "--package") or a.startswith("--package=") for a in argv):
        return False
    from lsx.config import _compose, compose_config, scale_overrides

    overrides = _overrides(argv)
    if not scale_overrides(_compose(overrides)):
        return False
    cfg = compose_config(overrides)
    job = OmegaConf.masked_copy(cfg, [k for k in cfg.keys() if k != "hydra"])
    sys.stdout.write(OmegaConf.to_yaml(job, resolve="--resolve" in argv))
    return True


_INFO_FLAGS = ("--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help", "--shell-completion", "-sc")


def config_message(argv: list[str], entry: str) -> str | None:
    """The first invalid value of any job the command line would launch, composed and scaled exactly as the
    job will be (so a bad value never creates a run directory); None when every job is valid."""
    if any(a in _INFO_FLAGS or a.startswith("--cfg=") for a in argv):
        return None
    from lsx.cli.validate import validate_config
    from lsx.config import compose_config, sweep_points
    from lsx.utils.errors import DatasetUnavailable

    points = sweep_points(_overrides(argv), any(a in ("-m", "--multirun") for a in argv), limit=256)
    for point in points:
        try:
            cfg = compose_config(point)
            c = OmegaConf.to_container(cfg, resolve=False)
            c.pop("hydra", None)
            c = OmegaConf.to_container(OmegaConf.create(c), resolve=True)
            validate_config(c)
            if entry == "analyze" and not c.get("analysis"):
                from lsx.jobs import registry  # noqa: F401  (declares the jobs)
                from lsx.jobs.base import JOBS

                return f"no analysis selected; add analysis=<job>, valid jobs: {', '.join(sorted(JOBS))}"
        except (ValueError, DatasetUnavailable) as err:
            where = f" (sweep job {' '.join(point)})" if len(points) > 1 else ""
            return f"{err}{where}"
        except Exception:  # Hydra's own errors (a bad group choice, a parse error): Hydra reports them itself
            return None
    return None


def exit_on_unknown_keys(argv: list[str] | None = None, entry: str = "train") -> None:
    """All pre-Hydra checks of a command line: exit 2 with one line on the first problem, before Hydra
    creates any directory. ``entry`` is the command (``train`` or ``analyze``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from lsx.cli import resolvers  # noqa: F401  (the config's own resolvers)

    try:
        if print_scaled_job_config(argv):
            sys.exit(0)
        checks = (unknown_key_message, launcher_message, output_dir_message, lambda a: config_message(a, entry))
        for check in checks:
            msg = check(argv)
            if msg:
                print(f"lsx: error: {msg}", file=sys.stderr)
                sys.exit(2)
    except ValueError as err:  # e.g. an unknown scale while printing --cfg job
        print(f"lsx: error: {err}", file=sys.stderr)
        sys.exit(2)
