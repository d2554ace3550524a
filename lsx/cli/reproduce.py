"""``python -m lsx.reproduce [preset ...] [scale=cpu] [seeds=N] [override ...]``: run presets' claims.

For each preset (default: every preset that declares ``claims``) it composes the grid points of its
``reproduce`` block — one job per combination of ``reproduce.grid`` values × training seed — and
runs each through :func:`lsx.cli.analyze.run_analysis` in this process, so the job cache makes a rerun a
no-op and a failed job is recorded with its reason while the others go on. Then it evaluates the
claims and writes ``<output_root>/reproduce/report.json`` and the self-contained ``report.html``.

``seeds=N`` takes the first N of the preset's seeds (continuing with the next integers when N is
larger); any other ``key=value`` is a Hydra override for every job (e.g. ``logger=wandb``, which also
logs the report as one W&B run of job type ``reproduce``). Presets, claims and the verdict rules:
README "Reproductions" and ``lsx/claims``.
"""
from __future__ import annotations

import itertools
import logging
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from lsx.config import CONF_DIR

log = logging.getLogger("lsx.reproduce")

DEFAULT_SEEDS = [0, 1, 2]
DEFAULT_TRAIN_LOSS_RATIO = 3.0
REPRODUCE_KEYS = ("scale", "seeds", "grid", "overrides", "train_loss_ratio", "budget_min", "figures")


@dataclass
class Plan:
    """A preset's reproduction: its grid points (override lists) and its claims."""

    preset: str
    scale: str
    seeds: list[int]
    points: list[list[str]]
    claims: list[dict[str, Any]]
    figures: list[dict[str, Any]]
    train_loss_ratio: float
    budget_min: float | None
    header: str


@dataclass
class PresetRun:
    plan: Plan
    jobs: list[dict[str, Any]] = field(default_factory=list)  # one per grid point: overrides, status, job_dir, ...
    run_time_s: float = 0.0


# ----------------------------------------------------------------------------- presets and plans
def preset_names() -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


def presets_with_claims() -> list[str]:
    """Presets whose file declares a non-empty ``claims`` list (read without composing: fast)."""
    out = []
    for name in preset_names():
        data = yaml.safe_load((CONF_DIR / "experiment" / f"{name}.yaml").read_text()) or {}
        if data.get("claims"):
            out.append(name)
    return out


def preset_header(preset: str) -> str:
    """The preset's runbook header (its leading comment lines), which says what it targets."""
    lines = []
    for line in (CONF_DIR / "experiment" / f"{preset}.yaml").read_text().splitlines():
        if not line.startswith("#"):
            break
        if "@package" not in line:
            lines.append(line.lstrip("# ").rstrip())
    return " ".join(lines).strip()


def hydra_value(v: Any) -> str:
    """A YAML value as a Hydra override value (lists stay one value: ``[0,1,2]``)."""
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(hydra_value(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    return str(v)


def make_plan(preset: str, scale: str | None = None, seeds: int | None = None, extra: Sequence[str] = ()) -> Plan:
    """Read a preset's ``reproduce``/``claims`` blocks (after the command line's ``extra`` overrides,
    e.g. ``reproduce.seeds=[0,1]``) and expand its grid (bad input → ValueError)."""
    from omegaconf import OmegaConf

    from lsx.claims.figures import check_figures
    from lsx.claims.verdicts import check_claims
    from lsx.config import compose_config

    if preset not in preset_names():
        raise ValueError(f"unknown preset {preset!r}; valid presets: {', '.join(preset_names())}")
    try:
        cfg = compose_config([f"experiment={preset}", *extra])
    except ValueError:
        raise
    except Exception as err:  # Hydra's own errors: one line
        raise ValueError(f"preset {preset!r}: cannot compose it with {list(extra)}: {str(err).splitlines()[0]}") from None
    rep = OmegaConf.to_container(cfg.get("reproduce") or OmegaConf.create({}), resolve=False) or {}
    unknown = sorted(set(rep) - set(REPRODUCE_KEYS))
    if unknown:
        raise ValueError(f"preset {preset!r}: unknown reproduce keys {unknown}; valid: {', '.join(REPRODUCE_KEYS)}")
    claims = check_claims(preset, OmegaConf.to_container(cfg.get("claims") or OmegaConf.create([]), resolve=False))
    figures = check_figures(preset, rep.get("figures"))
    seed_list = [int(s) for s in (rep.get("seeds") or DEFAULT_SEEDS)]
    if seeds is not None:
        if seeds < 1:
            raise ValueError(f"seeds={seeds}: needs at least 1")
        extra = (s for s in itertools.count(max(seed_list) + 1))
        seed_list = (seed_list + [next(extra) for _ in range(max(0, seeds - len(seed_list)))])[:seeds]
    grid = rep.get("grid") or {}
    if not isinstance(grid, dict) or any(not isinstance(v, list) or not v for v in grid.values()):
        raise ValueError(f"preset {preset!r}: reproduce.grid must map override keys to non-empty lists of values")
    fixed = [str(o) for o in (rep.get("overrides") or [])]
    scale = scale or str(rep.get("scale", "cpu"))
    points = []
    for combo in itertools.product(*grid.values()):
        for s in seed_list:
            points.append([f"experiment={preset}", f"scale={scale}", f"seed={s}", *fixed,
                           *(f"{k}={hydra_value(v)}" for k, v in zip(grid, combo))])
    return Plan(preset, scale, seed_list, points, claims, figures,
                float(rep.get("train_loss_ratio", DEFAULT_TRAIN_LOSS_RATIO)), rep.get("budget_min"), preset_header(preset))


# ----------------------------------------------------------------------------- running the jobs
def compose_point(overrides: Sequence[str]) -> dict[str, Any]:
    from omegaconf import OmegaConf

    from lsx.config import compose_config

    cfg = compose_config(list(overrides))
    c = OmegaConf.to_container(cfg, resolve=False)
    c.pop("hydra", None)
    c = OmegaConf.to_container(OmegaConf.create(c), resolve=True)
    c["_overrides"] = list(overrides)
    return c


def _describe(overrides: Sequence[str]) -> str:
    return " ".join(o for o in overrides if not o.startswith(("experiment=", "scale=")))


def run_plan(plan: Plan, extra: Sequence[str], out_dir: Path, echo=print) -> PresetRun:
    """Run every grid point of ``plan`` (cached jobs are no-ops; failures are recorded, not raised)."""
    from lsx.cli.analyze import run_analysis

    run = PresetRun(plan)
    t0 = time.time()
    n = len(plan.points)
    echo(f"[{plan.preset}] {n} job(s) at scale={plan.scale}, seeds {plan.seeds}" + (f" (budget ~{plan.budget_min} min)" if plan.budget_min else ""))
    for i, point in enumerate(plan.points, 1):
        overrides = [*point, *extra]
        entry: dict[str, Any] = {"overrides": overrides, "seed": int(point[2].split("=", 1)[1])}
        t = time.time()
        try:
            c = compose_point(overrides)
            res = run_analysis(c, out_dir / "points" / plan.preset / f"{i:03d}", progress=False)
            entry.update(status="cached" if res.get("cached") else "ran", job_dir=res["job_dir"], job=res["job"],
                         elapsed_s=res.get("elapsed_s"))
        except KeyboardInterrupt:
            raise
        except Exception as err:  # one failed job is listed, the rest go on
            msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
            entry.update(status="failed", reason=f"{type(err).__name__}: {msg}".strip().splitlines()[0][:500])
        entry["wall_s"] = round(time.time() - t, 2)
        run.jobs.append(entry)
        tail = entry.get("reason") if entry["status"] == "failed" else Path(entry["job_dir"]).name
        echo(f"[{plan.preset}] {i}/{n} {_describe(point) or 'default'}: {entry['status']} in {entry['wall_s']:.1f}s ({tail})")
    run.run_time_s = round(time.time() - t0, 2)
    return run


# ----------------------------------------------------------------------------- the command line
def parse_args(argv: Sequence[str]) -> tuple[list[str], str | None, int | None, list[str]]:
    presets, extra = [], []
    scale: str | None = None
    seeds: int | None = None
    for a in argv:
        if a.startswith("scale="):
            scale = a.split("=", 1)[1]
        elif a.startswith("seeds="):
            try:
                seeds = int(a.split("=", 1)[1])
            except ValueError:
                raise ValueError(f"{a}: seeds takes a number of seeds, e.g. seeds=3") from None
        elif "=" in a:
            extra.append(a)
        elif a in ("-h", "--help"):
            raise SystemExit(__doc__)
        else:
            presets.append(a)
    return presets, scale, seeds, extra


def reproduce(argv: Sequence[str], echo=print) -> dict[str, Any]:
    """Plan, run, evaluate and write the report; returns the report dict."""
    from lsx.claims.report import build_preset_report, fmt, log_wandb, write_report
    from lsx.config import compose_config

    presets, scale, seeds, extra = parse_args(argv)
    if not presets:
        presets = presets_with_claims()
        if not presets:
            raise ValueError("no preset declares claims (see README 'Reproductions')")
    plans = [make_plan(p, scale, seeds, extra) for p in presets]  # every preset validated before any job runs
    base: dict[str, Any] = {}
    for plan in plans:
        try:
            base = compose_point(plan.points[0] + list(extra))
        except Exception as err:  # a bad override or scale: one line, before anything runs
            raise ValueError(f"preset {plan.preset!r}: cannot compose its jobs ({' '.join(plan.points[0][1:] + list(extra))}): "
                             f"{str(err).splitlines()[0]}") from None
    out_dir = Path(base.get("paths", {}).get("output_root") or compose_config([]).paths.output_root) / "reproduce"
    sections = []
    for plan in plans:
        run = run_plan(plan, extra, out_dir, echo)
        sections.append(build_preset_report(run, out_dir))
        for c in sections[-1]["claims"]:
            est = c.get("estimate") or {}
            echo(f"[{plan.preset}] claim {c['id']}: {c['verdict']} ({c['statistic']} = {fmt(est.get('value'))} "
                 f"[{fmt(est.get('lo'))}, {fmt(est.get('hi'))}], n = {fmt(est.get('n'))}) — {c['reason']}")
    report = write_report(sections, out_dir, list(argv))
    echo(f"report: {out_dir / 'report.html'}  ({', '.join(f'{v} {k}' for k, v in report['summary'].items())})")
    if (base.get("logger") or {}).get("name") == "wandb":
        log_wandb(report, out_dir, base["logger"])
    return report


def main(argv: Sequence[str] | None = None) -> int:
    import os

    import lightning  # noqa: F401  (its import sets its loggers to INFO: quiet them after it)

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*(treespec|on_after_batch_transfer|does not have many workers).*")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    argv = sys.argv[1:] if argv is None else list(argv)
    if os.environ.get("LSX_DEBUG"):
        reproduce(argv, echo=lambda s: print(s, flush=True))
        return 0
    try:
        reproduce(argv, echo=lambda s: print(s, flush=True))
    except ValueError as err:
        print(f"lsx: error: {err}", file=sys.stderr)
        return 2
    return 0



def cli() -> None:
    """``python -m lsx.reproduce``."""
    sys.exit(main())
