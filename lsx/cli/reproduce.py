"""``python -m lsx.reproduce [preset ...] [seeds=10-15] [replication=16-21] [jobs=N] [threads=1] [scale=cpu]
[hydra/launcher=NAME [hydra.launcher.KEY=VALUE ...]] [override ...]``.

For each preset (default: every preset that declares ``claims``) it composes one job per combination
of ``reproduce.grid`` values × independent unit, for two disjoint unit sets (discovery and
replication), and runs them through :func:`lsx.cli.analyze.run_analysis` — in ``jobs`` worker
processes at ``threads`` torch threads each (defaults: one per core, one thread), so results do not
depend on the schedule (``threads=2`` with fresh cache and output roots checks that no verdict moves
with the thread count: CPU results differ in their last bits across thread counts); the job cache
makes a rerun a no-op, the training cache's lock makes two jobs that need one model train it once,
and a failed job is recorded with its reason while the others go on. Then it evaluates each claim on
each set, combines them (:mod:`lsx.claims.replication`) and writes
``<output_root>/reproduce/report.json`` and the self-contained ``report.html`` — outputs only, never a
tracked file (``python -m lsx.claims.readme`` publishes a complete, clean report into the README).

On a cluster, ``hydra/launcher=NAME`` (``joblib``, ``slurm`` for a SLURM array with one task per point, any
``conf/hydra/launcher`` preset; ``hydra.launcher.KEY=VALUE`` sets its options) replaces the pool: the points whose
job is not finished run as one Hydra multirun (:mod:`lsx.cli.reproduce_launch`), each exactly as a pool worker runs
it, and the report is written when all are done — the same report, since entries are stored by point. Finished
points are read back, not launched, so a rerun launches only what is missing. A launcher this machine cannot use
(unknown, plugin missing, SLURM without ``sbatch``) is one line before anything is created.

A preset's unit (``reproduce.unit``: a training seed, a toy trial seed, a disjoint set of optima)
turns a unit index into overrides, so ``seeds=``/``replication=`` (unit indices: ``10-15`` or
``[10,11,12]``; replication defaults to the next block of equal size) change what every preset
computes. Any other ``key=value`` is a Hydra override for every job (e.g. ``logger=wandb``); one that
would set a unit (``seed=``, the unit key, ``reproduce.*``) is refused. Presets, claims and the verdict
rules: docs/reproduction.md, docs/presets.md and ``lsx/claims``.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from lsx.claims.units import SETS, Unit, check_claim_units, check_sets, next_block, parse_unit, parse_units, preset_sets
from lsx.config import CONF_DIR

log = logging.getLogger("lsx.reproduce")

DEFAULT_TRAIN_LOSS_RATIO = 3.0
KINDS = ("paper", "sanity")  # sanity checks (no paper claim) are counted apart from the paper claims
REPRODUCE_KEYS = ("scale", "unit", "seeds", "grid", "overrides", "train_loss_ratio", "budget_min", "figures", "kind")
OPTIONS = ("seeds", "replication", "jobs", "threads", "scale")


@dataclass
class Plan:
    """A preset's reproduction: its jobs (override lists, each labelled with its set and unit) and its claims."""

    preset: str
    scale: str
    unit: Unit
    seeds: dict[str, list[int]]  # {"discovery": [...], "replication": [...]}: unit indices
    points: list[list[str]]
    labels: list[tuple[str, int]]  # (set, unit index) of each point
    claims: list[dict[str, Any]]
    figures: list[dict[str, Any]]
    train_loss_ratio: float
    budget_min: float | None
    header: str
    kind: str = "paper"


@dataclass
class PresetRun:
    plan: Plan
    jobs: list[dict[str, Any]] = field(default_factory=list)  # one per point: overrides, set, unit, status, job_dir, ...
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


def override_key(override: str) -> str:
    """``+a.b=1`` / ``~a.b`` / ``a.b=1`` → ``a.b``."""
    return override.split("=", 1)[0].lstrip("+~")


def resolve_sets(preset: str, rep_seeds: Any, seeds: Any = None, replication: Any = None) -> dict[str, list[int]]:
    """The two unit sets of a preset: the command line's ``seeds``/``replication`` when given (replication
    defaults to the next block of equal size), else the preset's ``reproduce.seeds``; checked against MIN_UNITS."""
    from lsx.claims import inference

    if seeds is not None:
        disc = parse_units(seeds, "seeds")
        repl = parse_units(replication, "replication") if replication is not None else next_block(disc)
        sets = {"discovery": disc, "replication": repl}
        where = f"seeds={seeds}" + (f" replication={replication}" if replication is not None else "")
    else:
        sets = preset_sets(preset, rep_seeds)
        where = f"preset {preset!r}: reproduce.seeds"
        if replication is not None:
            sets["replication"] = parse_units(replication, "replication")
            where += f" with replication={replication}"
    return check_sets(where, sets, inference.MIN_UNITS)


def make_plan(
    preset: str, scale: str | None = None, seeds: Any = None, replication: Any = None, extra: Sequence[str] = ()
) -> Plan:
    """Read a preset's ``reproduce``/``claims`` blocks (after the command line's ``extra`` overrides) and
    expand its jobs over both unit sets (bad input → one-line ValueError, before anything runs)."""
    from omegaconf import OmegaConf

    from lsx.claims.figures import check_figures
    from lsx.claims.verdicts import check_claims
    from lsx.config import compose_config

    if preset not in preset_names():
        raise ValueError(f"unknown preset {preset!r}; valid presets: {', '.join(preset_names())}")
    for o in extra:
        if override_key(o).startswith("reproduce"):
            raise ValueError(
                f"{o}: the reproduce block is read from the preset; on the command line use "
                f"seeds=10-15 replication=16-21 (unit indices), jobs=N, scale=NAME"
            )
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
    unit = parse_unit(preset, rep.get("unit"))
    check_claim_units(preset, claims, unit)
    kind = str(rep.get("kind", "paper"))
    if kind not in KINDS:
        raise ValueError(f"preset {preset!r}: reproduce.kind {kind!r}; valid: {', '.join(KINDS)}")
    for o in extra:  # an override of a unit would silently collapse the units into one
        if override_key(o) in (unit.key, "seed"):
            raise ValueError(
                f"{o}: units are chosen with seeds=10-15 replication=16-21, not by overriding "
                f"{override_key(o)} (preset {preset!r}: a unit is {unit.describe()})"
            )
    sets = resolve_sets(preset, rep.get("seeds"), seeds, replication)
    grid = rep.get("grid") or {}
    if not isinstance(grid, dict) or any(not isinstance(v, list) or not v for v in grid.values()):
        raise ValueError(f"preset {preset!r}: reproduce.grid must map override keys to non-empty lists of values")
    fixed = [str(o) for o in (rep.get("overrides") or [])]
    clash = [k for k in [*grid, *map(override_key, fixed)] if k == unit.key]
    if clash:
        raise ValueError(
            f"preset {preset!r}: reproduce.grid/overrides set the unit key {unit.key!r}; " "units come from reproduce.seeds"
        )
    scale = scale or str(rep.get("scale", "cpu"))
    points, labels = [], []
    for name in SETS:
        for combo in itertools.product(*grid.values()):
            for u in sets[name]:
                points.append(
                    [
                        f"experiment={preset}",
                        f"scale={scale}",
                        unit.override(u),
                        *fixed,
                        *(f"{k}={hydra_value(v)}" for k, v in zip(grid, combo)),
                    ]
                )
                labels.append((name, u))
    return Plan(
        preset,
        scale,
        unit,
        sets,
        points,
        labels,
        claims,
        figures,
        float(rep.get("train_loss_ratio", DEFAULT_TRAIN_LOSS_RATIO)),
        rep.get("budget_min"),
        preset_header(preset),
        kind,
    )


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


def run_point(overrides: Sequence[str], run_dir: str) -> dict[str, Any]:
    """Run one job (in this process or a worker); a failure is returned with its reason, never raised."""
    from lsx.cli.analyze import run_analysis

    t = time.time()
    entry: dict[str, Any] = {"started": t}
    try:
        res = run_analysis(compose_point(overrides), Path(run_dir), progress=False)
        entry.update(
            status="cached" if res.get("cached") else "ran",
            job_dir=res["job_dir"],
            job=res["job"],
            elapsed_s=res.get("elapsed_s"),
            torch_threads=res.get("torch_threads"),
            code_version=res.get("code_version"),
        )
    except KeyboardInterrupt:
        raise
    except Exception as err:  # one failed job is listed, the rest go on
        msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        entry.update(status="failed", reason=f"{type(err).__name__}: {msg}".strip().splitlines()[0][:500])
    entry["finished"] = time.time()
    entry["wall_s"] = round(entry["finished"] - t, 2)
    return entry


def init_worker(threads: int = 1) -> None:
    """A worker process: ``threads`` torch threads (default 1: the jobs share the cores), quiet loggers."""
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    _quiet()


def _quiet() -> None:
    import lightning  # noqa: F401  (its import sets its loggers to INFO: quiet them after it)

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*(treespec|on_after_batch_transfer|does not have many workers).*")


def _describe(overrides: Sequence[str]) -> str:
    return " ".join(o for o in overrides if not o.startswith(("experiment=", "scale=")))


def run_plans(
    plans: Sequence[Plan],
    extra: Sequence[str],
    out_dir: Path,
    jobs: int = 1,
    echo: Callable[[str], None] = print,
    threads: int = 1,
    launcher: str | None = None,
    launcher_settings: Sequence[str] = (),
) -> list[PresetRun]:
    """Run every point of every plan: in this process (``jobs=1``), in ``jobs`` worker processes at ``threads``
    torch threads each, or as one Hydra multirun through ``hydra/launcher=launcher`` (:mod:`lsx.cli.reproduce_launch`).
    Entries are stored by point, so the report does not depend on the schedule."""
    tasks = [(k, i) for k, plan in enumerate(plans) for i in range(len(plan.points))]
    runs = [PresetRun(p, [None] * len(p.points)) for p in plans]  # type: ignore[list-item]
    done = {k: 0 for k in range(len(plans))}
    for plan in plans:
        per = {n: len(plan.seeds[n]) for n in SETS}
        echo(
            f"[{plan.preset}] {len(plan.points)} job(s) at scale={plan.scale}: unit = {plan.unit.describe()}, discovery "
            f"{plan.seeds['discovery']}, replication {plan.seeds['replication']} ({per['discovery']}+{per['replication']} units)"
            + (f" (budget ~{plan.budget_min} min)" if plan.budget_min else "")
        )

    def args(k: int, i: int) -> tuple[list[str], str]:
        plan = plans[k]
        name, _ = plan.labels[i]
        return [*plan.points[i], *extra], str(out_dir / "points" / plan.preset / f"{name}_{i:03d}")

    def record(k: int, i: int, entry: dict[str, Any]) -> None:
        plan = plans[k]
        name, u = plan.labels[i]
        overrides, _ = args(k, i)
        runs[k].jobs[i] = {"overrides": overrides, "set": name, "unit": u, **entry}
        done[k] += 1
        tail = entry.get("reason") if entry["status"] == "failed" else Path(entry["job_dir"]).name
        echo(
            f"[{plan.preset}] {done[k]}/{len(plan.points)} {name} {_describe(plan.points[i]) or 'default'}: "
            f"{entry['status']} in {entry['wall_s']:.1f}s ({tail})"
        )

    if launcher is not None:
        from lsx.cli.reproduce_launch import run_launched

        run_launched(tasks, args, record, launcher, launcher_settings, out_dir / "launch", threads, echo)
    elif jobs <= 1:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(threads)  # as in the workers: the verdicts do not depend on jobs=
        try:
            for k, i in tasks:
                record(k, i, run_point(*args(k, i)))
        finally:
            torch.set_num_threads(before)
    else:
        _run_pool(tasks, args, record, jobs, threads)
    for run in runs:
        stamps = [(j["started"], j["finished"]) for j in run.jobs]
        run.run_time_s = round(max(b for _, b in stamps) - min(a for a, _ in stamps), 2) if stamps else 0.0
    return runs


def _run_pool(tasks, args, record, jobs: int, threads: int = 1) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=multiprocessing.get_context("spawn"), initializer=init_worker, initargs=(threads,)
    ) as pool:
        futures = {pool.submit(run_point, *args(k, i)): (k, i) for k, i in tasks}
        try:
            for fut in as_completed(futures):
                k, i = futures[fut]
                try:
                    entry = fut.result()
                except BrokenProcessPool as err:  # a worker died (killed, out of memory): its job is failed, not lost
                    now = time.time()
                    entry = {
                        "status": "failed",
                        "reason": f"worker process died: {err}"[:500],
                        "started": now,
                        "finished": now,
                        "wall_s": 0.0,
                    }
                record(k, i, entry)
        except KeyboardInterrupt:  # Ctrl-C reaches the workers too; SIGTERM (kill, scancel) only this process
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()  # a job stopped mid-way resumes from its last stage on the next run
            pool.shutdown(wait=False, cancel_futures=True)
            raise


# ----------------------------------------------------------------------------- the command line
@dataclass
class Args:
    presets: list[str] = field(default_factory=list)
    scale: str | None = None
    seeds: str | None = None
    replication: str | None = None
    jobs: int = 0  # 0: one per core
    threads: int = 1  # torch threads per job: 1 by default; threads=2 checks that the verdicts do not move
    extra: list[str] = field(default_factory=list)


def parse_args(argv: Sequence[str]) -> Args:
    a = Args()
    for arg in argv:
        key, eq, value = arg.partition("=")
        if eq and key in OPTIONS:
            if key in ("jobs", "threads"):
                if not value.isdigit() or int(value) < 1:
                    what = "worker processes" if key == "jobs" else "torch threads per job"
                    raise ValueError(f"{arg}: {key} takes a number of {what} >= 1, e.g. {key}=2")
                setattr(a, key, int(value))
            else:
                if key in ("seeds", "replication"):
                    parse_units(value, key)  # bad syntax: one line, before any preset is read
                setattr(a, key, value)
        elif eq:
            a.extra.append(arg)
        elif arg in ("-h", "--help"):
            raise SystemExit(__doc__)
        else:
            a.presets.append(arg)
    return a


def environment(jobs: int | None, threads: int = 1, launcher: str | None = None) -> dict[str, Any]:
    """What the numbers were computed on: CPU results differ slightly across torch versions and thread counts
    (``launcher``: the Hydra launcher that ran the jobs; the CPU is then the one that launched them)."""
    import platform

    import torch

    from lsx.utils.machine import cpu_model

    cpu = cpu_model()
    env = {
        "torch": torch.__version__,
        "torch_threads": threads,
        "jobs": jobs,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if launcher is not None:  # absent for the pool: earlier reports keep their exact form
        env["launcher"] = launcher
    return env


def reproduce(argv: Sequence[str], echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Plan, run, evaluate and write the report (outputs only); returns the report dict."""
    from lsx.claims.report import build_preset_report, fmt, log_wandb, write_report
    from lsx.cli.reproduce_launch import check_launcher, split_launcher
    from lsx.config import compose_config

    a = parse_args(argv)
    launcher, launcher_settings, a.extra = split_launcher(a.extra)
    if launcher is not None:
        if a.jobs:
            raise ValueError(
                f"jobs={a.jobs} sizes lsx.reproduce's own process pool; with hydra/launcher={launcher} the launcher "
                "decides how many jobs run at once (e.g. hydra.launcher.n_jobs=4, hydra.launcher.array_parallelism=64)"
            )
        check_launcher(launcher, launcher_settings)
    if not any(e.startswith("cache.stale=") for e in a.extra):
        a.extra.append("cache.stale=recompute")  # a report rests on one code version (cache.stale=keep opts out)
    presets = a.presets or presets_with_claims()
    if not presets:
        raise ValueError("no preset declares claims (see docs/reproduction.md)")
    plans = [make_plan(p, a.scale, a.seeds, a.replication, a.extra) for p in presets]  # all validated before any job runs
    base: dict[str, Any] = {}
    for plan in plans:
        try:
            base = compose_point(plan.points[0] + list(a.extra))
        except Exception as err:  # a bad override or scale: one line, before anything runs
            raise ValueError(
                f"preset {plan.preset!r}: cannot compose its jobs ({' '.join(plan.points[0][1:] + list(a.extra))}): "
                f"{str(err).splitlines()[0]}"
            ) from None
    out_dir = Path(base.get("paths", {}).get("output_root") or compose_config([]).paths.output_root) / "reproduce"
    jobs = a.jobs or os.cpu_count() or 1
    _quiet()  # imports Lightning (~5 s): only once the command is known to be good, so bad input is refused at once
    t0 = time.time()
    runs = run_plans(plans, a.extra, out_dir, jobs, echo, a.threads, launcher, launcher_settings)
    sections = []
    for run in runs:
        sections.append(build_preset_report(run, out_dir))
        for c in sections[-1]["claims"]:
            sets = "; ".join(
                f"{n} {s['verdict']} ({fmt((s.get('estimate') or {}).get('value'))} "
                f"[{fmt((s.get('estimate') or {}).get('lo'))}, {fmt((s.get('estimate') or {}).get('hi'))}], "
                f"n = {fmt((s.get('estimate') or {}).get('n'))})"
                for n, s in c["sets"].items()
            )
            echo(f"[{run.plan.preset}] claim {c['id']}: {c['verdict']} — {sets}")
    env = environment(None if launcher else jobs, a.threads, launcher)
    report = write_report(sections, out_dir, list(argv), env, round(time.time() - t0, 2))
    counts = "; ".join(f"{kind}: " + ", ".join(f"{v} {k}" for k, v in c.items()) for kind, c in report["summary"].items())
    echo(f"report: {out_dir / 'report.html'}  ({counts})")
    if (base.get("logger") or {}).get("name") == "wandb":
        log_wandb(report, out_dir, base["logger"])
    return report


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    argv = sys.argv[1:] if argv is None else list(argv)
    if os.environ.get("LSX_DEBUG"):
        reproduce(argv, echo=lambda s: print(s, flush=True))
        return 0
    # SIGTERM (kill, a cancelled batch job, timeout) stops the run as Ctrl-C does: the worker processes stop with it
    before = signal.signal(signal.SIGTERM, _interrupt)
    try:
        reproduce(argv, echo=lambda s: print(s, flush=True))
    except ValueError as err:
        print(f"lsx: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lsx: interrupted; finished jobs are kept: the same command resumes", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, before)
    return 0


def cli() -> None:
    """``python -m lsx.reproduce``."""
    sys.exit(main())
