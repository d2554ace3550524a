"""``lsx.reproduce ... hydra/launcher=NAME``: a reproduction's grid points as one Hydra multirun.

The pool of :mod:`lsx.cli.reproduce` runs on one machine. Through a launcher (``joblib``/``joblib_local`` on this
machine, ``slurm`` for a SLURM array with one task per point, ``submitit_local``, or any ``conf/hydra/launcher``
preset) the parent writes the points that are not finished yet into ``<output_root>/reproduce/launch/<stamp>/points.json``
and runs ``python -m lsx.cli.reproduce_launch -m +point=0,1,...`` with that launcher. Each multirun job is
:func:`main` here: it runs its point exactly as a pool worker does (:func:`lsx.cli.reproduce.run_point`, the same run
directory and torch threads) and writes the point's entry to ``entries/<n>.json``. The parent reports entries as
they appear, gathers them by point when the launcher returns (it waits for all of its jobs) and writes the same
report as the pool. Points whose job is already finished and fresh are read back in the parent instead of being
launched, so rerunning a partly finished reproduction launches only the rest; a point whose job never wrote its
entry (a killed SLURM task) is a failed job in the report, and the next run launches it again.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import hydra
from omegaconf import DictConfig

from lsx.config import CONF_DIR

PLUGIN_LAUNCHERS = ("basic", "joblib", "submitit_local", "submitit_slurm")  # Hydra's and its plugins' own names
POLL_S = 1.0


def split_launcher(extra: Sequence[str]) -> tuple[str | None, list[str], list[str]]:
    """``(launcher name, hydra.launcher.* overrides, the overrides for the jobs)`` from the command line's
    ``key=value`` arguments; other ``hydra`` keys and launcher settings without a launcher are one line."""
    launcher, settings, rest = None, [], []
    for o in extra:
        key = o.split("=", 1)[0].lstrip("+~")
        if key == "hydra/launcher":
            launcher = o.split("=", 1)[1]
        elif key.startswith("hydra.launcher."):
            settings.append(o)
        elif key.startswith("hydra"):
            raise ValueError(
                f"{o}: lsx.reproduce takes hydra/launcher=NAME and hydra.launcher.KEY=VALUE settings; "
                "its run and sweep directories are under paths.output_root/reproduce"
            )
        else:
            rest.append(o)
    if settings and launcher is None:
        raise ValueError(f"{settings[0]} sets a launcher option, but no launcher is chosen; add hydra/launcher=NAME")
    return launcher, settings, rest


def launcher_names() -> list[str]:
    """The launchers Hydra can compose here: conf/hydra/launcher presets and the installed plugins' own."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return sorted(GlobalHydra.instance().config_loader().get_group_options("hydra/launcher"))
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return sorted(GlobalHydra.instance().config_loader().get_group_options("hydra/launcher"))


def check_launcher(name: str, settings: Sequence[str] = ()) -> None:
    """A launcher this machine can use, with settings it has, else one-line ValueError (before anything is created)."""
    from lsx.cli.checks import launcher_message

    names = launcher_names()
    if name not in names and name not in PLUGIN_LAUNCHERS:
        raise ValueError(f"hydra/launcher={name}: unknown launcher; valid: {', '.join(names)}")
    msg = launcher_message(["-m", f"hydra/launcher={name}"])  # the plugin is installed; SLURM has sbatch
    if msg:
        raise ValueError(msg)
    if settings:
        _compose_launcher(name, settings)


def _compose_launcher(name: str, settings: Sequence[str]) -> None:
    """Compose the launcher's config with ``settings`` as the multirun will: a misspelt key or bad value is one line."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    def launcher_cfg(overrides: list[str]) -> Any:
        return compose(
            config_name=None, overrides=[f"hydra/launcher={name}", *overrides], return_hydra_config=True
        ).hydra.launcher

    initialized = GlobalHydra.instance().is_initialized()
    with contextlib.nullcontext() if initialized else initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        valid = [str(k) for k in launcher_cfg([]).keys() if k != "_target_"]
        for o in settings:
            key = o.split("=", 1)[0].lstrip("+~")[len("hydra.launcher.") :].split(".")[0]
            if key not in valid:
                raise ValueError(f"{o}: hydra/launcher={name} has no option {key!r}; valid: {', '.join(valid)}")
        try:
            launcher_cfg(list(settings))
        except Exception as err:  # a value of the wrong type: Hydra's own message, first line
            why = "; ".join(ln.strip() for ln in str(err).splitlines()[:2])
            raise ValueError(f"hydra/launcher={name} {' '.join(settings)}: {why}") from None


def _quote(value: str) -> str:
    """A string as one quoted Hydra override value (any path)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def launch_command(launch_file: Path, n: int, launcher: str, settings: Sequence[str]) -> list[str]:
    """The multirun that runs points 0..n-1 of ``launch_file``, one Hydra job each."""
    sweep = launch_file.parent / "hydra"
    return [
        sys.executable,
        "-m",
        "lsx.cli.reproduce_launch",
        "-m",
        f"+launch={_quote(str(launch_file.resolve()))}",
        "+point=" + ",".join(str(i) for i in range(n)),
        f"hydra/launcher={launcher}",
        f"hydra.sweep.dir={_quote(str(sweep.resolve()))}",
        "hydra.sweep.subdir=${hydra.job.num}",
        *settings,
    ]


def run_launched(
    tasks: Sequence[tuple[int, int]],
    args: Callable[[int, int], tuple[list[str], str]],
    record: Callable[[int, int, dict[str, Any]], None],
    launcher: str,
    settings: Sequence[str],
    launch_root: Path,
    threads: int = 1,
    echo: Callable[[str], None] = print,
) -> None:
    """Run ``tasks`` (``(plan, point)`` pairs) through ``hydra/launcher=launcher``; ``record`` gets every point's entry.
    Finished points are read back here (a cache hit of :func:`run_point`), the others are launched."""
    from lsx.cli.analyze import finished_job_dir
    from lsx.cli.reproduce import compose_point, run_point
    from lsx.utils.io import atomic_write_json

    pending = []
    for k, i in tasks:
        overrides, run_dir = args(k, i)
        if finished_job_dir(compose_point(overrides)) is not None:
            record(k, i, run_point(overrides, run_dir))
        else:
            pending.append((k, i))
    if not pending:
        return
    launch_dir = launch_root / f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{os.getpid()}"
    entries = launch_dir / "entries"
    entries.mkdir(parents=True, exist_ok=True)
    points = [{"overrides": o, "run_dir": str(Path(d).resolve())} for o, d in (args(k, i) for k, i in pending)]
    atomic_write_json(launch_dir / "points.json", {"threads": threads, "entries": str(entries.resolve()), "points": points})
    log_path = launch_dir / "launcher.log"
    echo(
        f"launching {len(pending)} job(s) through hydra/launcher={launcher} ({len(tasks) - len(pending)} finished already); "
        f"launcher log: {log_path}"
    )
    seen: set[int] = set()

    def gather() -> None:
        for n, (k, i) in enumerate(pending):
            path = entries / f"{n}.json"
            if n not in seen and path.exists():
                seen.add(n)
                record(k, i, _read_entry(path))

    with open(log_path, "ab") as log:
        cmd = launch_command(launch_dir / "points.json", len(pending), launcher, settings)
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=_child_env())
        try:
            while proc.poll() is None:
                gather()
                time.sleep(POLL_S)
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            raise
    gather()
    missing = [n for n in range(len(pending)) if n not in seen]
    if missing:
        why = _last_line(log_path)
        echo(f"hydra/launcher={launcher} exited with code {proc.returncode}: {len(missing)} job(s) wrote no result ({why})")
        now = time.time()
        for n in missing:
            k, i = pending[n]
            reason = (
                f"no result from hydra/launcher={launcher} (launcher exit code {proc.returncode}; "
                f"job {n} of {launch_dir}: {why})"
            )
            record(k, i, {"status": "failed", "reason": reason[:500], "started": now, "finished": now, "wall_s": 0.0})


def _child_env() -> dict[str, str]:
    """This environment, with this lsx first on PYTHONPATH: the launched jobs (and a SLURM array, which inherits the
    submitting environment) run the code that planned them, whatever the working directory."""
    import lsx

    root = str(Path(lsx.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root, *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != root)])
    return env


def _read_entry(path: Path) -> dict[str, Any]:
    from lsx.utils.io import read_json

    try:
        return dict(read_json(path))
    except (OSError, ValueError) as err:
        now = time.time()
        return {
            "status": "failed",
            "reason": f"unreadable entry {path}: {err}"[:500],
            "started": now,
            "finished": now,
            "wall_s": 0.0,
        }


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no launcher log"
    return lines[-1][:300] if lines else "the launcher printed nothing"


@hydra.main(config_path=str(CONF_DIR), config_name=None, version_base="1.3")
def main(cfg: DictConfig) -> None:
    """One multirun job: point ``cfg.point`` of the launch file ``cfg.launch``, run as a pool worker runs it."""
    from lsx import distributed
    from lsx.cli.reproduce import init_worker, run_point
    from lsx.utils.io import atomic_write_json, read_json

    spec = read_json(Path(str(cfg.launch)))
    n = int(cfg.point)
    point = spec["points"][n]
    rank, _ = distributed.init_from_env()  # a launcher preset with several tasks per job shards the point's job
    init_worker(int(spec.get("threads", 1)))
    entry = run_point(point["overrides"], point["run_dir"])
    if rank == 0:
        atomic_write_json(Path(spec["entries"]) / f"{n}.json", entry)


if __name__ == "__main__":
    main()
