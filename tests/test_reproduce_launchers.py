"""``lsx.reproduce ... hydra/launcher=NAME``: a reproduction's grid as a Hydra multirun (joblib on this machine, a SLURM
array through submitit, faked here by an ``sbatch`` that runs the array's tasks one after another) gives the report
of the process pool; a partly finished reproduction launches only its unfinished points; a launcher the machine
cannot use is one line before anything is created."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

from lsx.claims.verdicts import INCONCLUSIVE
from lsx.cli.reproduce import reproduce

# fort_toy at its smallest: 12 jobs (6 + 6 trial seeds, the minimum), about 3 s of compute each, nothing trained
TOY = [
    "fort_toy",
    "analysis.trials=1",
    "analysis.steps=50",
    "analysis.pairs=[[10,3]]",
    "analysis.dim_offsets=[-3,0,3]",
    "analysis.tunnel_pair=[10,3]",
    "analysis.connector_steps=20",
    "analysis.num_segments=4",
    "analysis.radial_directions=2",
]


def _roots(mp: pytest.MonkeyPatch, root: Path) -> Path:
    mp.setenv("LSX_CACHE_DIR", str(root / "cache"))
    mp.setenv("LSX_OUTPUT_DIR", str(root / "outputs"))
    return root / "outputs"


def _outcome(report: dict) -> tuple[dict, list]:
    """What must not depend on how the jobs were dispatched: each point's metrics and every claim's numbers."""
    (s,) = report["presets"]
    metrics = {(j["set"], j["unit"]): json.loads((Path(j["job_dir"]) / "results.json").read_text())["metrics"] for j in s["jobs"]}
    claims = [
        (c["id"], c["verdict"], {n: (d["verdict"], d.get("estimate")) for n, d in sorted(c["sets"].items())}) for c in s["claims"]
    ]
    return metrics, claims


def _statuses(report: dict) -> dict[tuple[str, int], str]:
    (s,) = report["presets"]
    return {(j["set"], j["unit"]): j["status"] for j in s["jobs"]}


def _launches(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "reproduce" / "launch").glob("*/points.json"))]


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """The reference: the same grid through lsx.reproduce's own pool (2 workers at one torch thread)."""
    with pytest.MonkeyPatch.context() as mp:
        out = _roots(mp, tmp_path_factory.mktemp("pool"))
        report = reproduce([*TOY, "jobs=2"], echo=lambda s: None)
    assert set(_statuses(report).values()) == {"ran"} and len(_statuses(report)) == 12
    return out, report, _outcome(report)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "args, message",
    [
        (["hydra/launcher=nope"], r"hydra/launcher=nope: unknown launcher; valid: basic, joblib, joblib_local, slurm"),
        (["hydra/launcher=slurm"], r"hydra/launcher=slurm submits jobs with SLURM's sbatch, which is not on PATH"),
        (["hydra/launcher=slurm_multigpu"], r"hydra/launcher=slurm_multigpu submits jobs with SLURM's sbatch"),
        (["hydra/launcher=joblib", "hydra.launcher.n_jobz=2"], r"has no option 'n_jobz'; valid: n_jobs, backend"),
        (["hydra/launcher=joblib", "hydra.launcher.n_jobs=many"], r"hydra/launcher=joblib hydra.launcher.n_jobs=many: "),
        (["hydra.launcher.n_jobs=2"], r"sets a launcher option, but no launcher is chosen; add hydra/launcher=NAME"),
        (["hydra/launcher=joblib", "jobs=2"], r"jobs=2 sizes lsx.reproduce's own process pool; with hydra/launcher=joblib"),
        (["hydra.sweep.dir=/tmp/x"], r"takes hydra/launcher=NAME and hydra.launcher.KEY=VALUE settings"),
    ],
)
def test_bad_launcher_is_one_line_and_creates_nothing(lsx_dirs, monkeypatch, tmp_path, args, message):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no sbatch here, whatever the machine has
    with pytest.raises(ValueError, match=message) as err:
        reproduce(["fort_toy", *args], echo=lambda s: pytest.fail(f"ran something: {s}"))
    assert "\n" not in str(err.value)
    assert not lsx_dirs[0].exists() and not lsx_dirs[1].exists()


def test_bad_launcher_on_the_command_line_exits_2_with_one_line(lsx_dirs):
    from tests.conftest import run_module

    r = run_module("lsx.reproduce", "fort_toy", "hydra/launcher=nope")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("lsx: error: hydra/launcher=nope: unknown launcher") and r.stderr.count("\n") == 1
    assert not lsx_dirs[1].exists()


def test_points_a_launcher_never_finished_are_failed_jobs(lsx_dirs, monkeypatch):
    """A launcher that dies (a lost node, a cancelled array) leaves its points failed in the report, with why."""
    from lsx.cli import reproduce_launch

    monkeypatch.setattr(
        reproduce_launch,
        "launch_command",
        lambda *a: [sys.executable, "-c", "import sys; print('node lost'); sys.exit(3)"],
    )
    lines: list[str] = []
    report = reproduce([*TOY, "hydra/launcher=joblib"], echo=lines.append)
    (s,) = report["presets"]
    assert s["n_failed"] == 12 and {j["status"] for j in s["jobs"]} == {"failed"}
    assert all("launcher exit code 3" in j["reason"] and "node lost" in j["reason"] for j in s["jobs"])
    assert all(c["verdict"] == INCONCLUSIVE for c in s["claims"])
    assert any("hydra/launcher=joblib exited with code 3: 12 job(s) wrote no result (node lost)" in ln for ln in lines)
    assert report["environment"]["launcher"] == "joblib" and report["environment"]["jobs"] is None
    (launch,) = _launches(lsx_dirs[1])
    assert len(launch["points"]) == 12


# ----------------------------------------------------------------------------- joblib and resume
@pytest.mark.slow  # ~2 min on 2 busy cores: 12 + 2 toy jobs through joblib
def test_joblib_launcher_gives_the_pool_report_and_resumes(pool, tmp_path, monkeypatch):
    out = _roots(monkeypatch, tmp_path)
    lines: list[str] = []
    report = reproduce([*TOY, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], echo=lines.append)
    assert set(_statuses(report).values()) == {"ran"}  # computed afresh, in the launcher's jobs
    assert _outcome(report) == pool[2]
    assert (
        report["environment"]["launcher"] == "joblib"
        and "jobs through hydra/launcher=joblib" in (out / "reproduce" / "report.html").read_text()
    )
    (launch,) = _launches(out)
    assert len(launch["points"]) == 12 and launch["threads"] == 1
    assert any("launching 12 job(s) through hydra/launcher=joblib (0 finished already)" in ln for ln in lines)
    # every point's run directory is where the pool puts it
    (s,) = report["presets"]
    assert all((out / "reproduce" / "points" / "fort_toy").glob("*/results.json"))
    assert len(list((out / "reproduce" / "points" / "fort_toy").glob("*/results.json"))) == 12

    # a partly finished reproduction: two jobs lost their results; the rerun launches only those two
    lost = {("discovery", 0): "results.json", ("replication", 9): "DONE"}
    for j in s["jobs"]:
        if (j["set"], j["unit"]) in lost:
            (Path(j["job_dir"]) / lost[(j["set"], j["unit"])]).unlink()
    again = reproduce([*TOY, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], echo=lambda s: None)
    assert {k for k, v in _statuses(again).items() if v == "ran"} == set(lost)
    assert {v for k, v in _statuses(again).items() if k not in lost} == {"cached"}
    first, second = _launches(out)
    assert sorted(p["run_dir"] for p in second["points"]) == sorted(
        p["run_dir"] for p in first["points"] if any(f"analysis.seed={u}" in p["overrides"] for _, u in lost)
    )
    assert _outcome(again) == pool[2]


# ----------------------------------------------------------------------------- SLURM (a fake sbatch)
FAKE_SBATCH = """#!{python}
import json, os, re, subprocess, sys
script = sys.argv[-1]
text = open(script).read()
with open(os.environ["FAKE_SLURM_LOG"], "a") as fh:
    fh.write(json.dumps({{"argv": sys.argv[1:], "script": text}}) + "\\n")
if os.environ.get("FAKE_SBATCH_REFUSE"):
    sys.exit("sbatch: error: Batch job submission failed: fake refusal")
m = re.search(r"^#SBATCH --array=(\\d+)-(\\d+)", text, re.M)
tasks = list(range(int(m[1]), int(m[2]) + 1)) if m else [None]
runner = '''
import os, subprocess, sys
script, tasks = sys.argv[1], eval(sys.argv[2])
for t in tasks:  # one task after another: the CPU is shared
    env = dict(os.environ, SLURM_JOB_ID=str(5000 + (t or 0)), SLURM_NTASKS="1", SLURM_JOB_NUM_NODES="1", SLURM_NODEID="0",
               SLURM_PROCID="0", SLURM_LOCALID="0", SLURM_JOB_NODELIST="localhost")
    if t is not None:
        env.update(SLURM_ARRAY_JOB_ID="4242", SLURM_ARRAY_TASK_ID=str(t))
    subprocess.run(["bash", script], env=env)
'''
log = open(os.environ["FAKE_SLURM_LOG"] + ".tasks", "ab")
subprocess.Popen([sys.executable, "-c", runner, script, repr(tasks)], stdout=log, stderr=log, start_new_session=True)
print("Submitted batch job 4242")
"""

FAKE_SRUN = """#!/bin/bash
# srun --unbuffered --output OUT --error ERR command...: run the command here
while [[ "$1" == -* ]]; do case "$1" in --output|--error) shift 2;; *) shift;; esac; done
exec "$@"
"""


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """``sbatch`` and ``srun`` on PATH: sbatch records the submission script and runs its array tasks locally."""
    bin_dir = tmp_path / "fake_slurm"
    bin_dir.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH.format(python=sys.executable)), ("srun", FAKE_SRUN)):
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "sbatch.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_LOG", str(log))
    return log


def test_slurm_launcher_submits_one_array_task_per_point(fake_slurm, lsx_dirs, monkeypatch):
    """The whole plan is one sbatch array of 12 tasks; a refused submission leaves every point failed, with why."""
    monkeypatch.setenv("FAKE_SBATCH_REFUSE", "1")
    lines: list[str] = []
    report = reproduce([*TOY, "hydra/launcher=slurm", "hydra.launcher.array_parallelism=4"], echo=lines.append)
    (submission,) = [json.loads(line) for line in fake_slurm.read_text().splitlines()]  # one sbatch call: one array
    script = submission["script"].splitlines()
    assert "#SBATCH --array=0-11%4" in script and "#SBATCH --gpus-per-node=1" in script  # conf/hydra/launcher/slurm.yaml
    (s,) = report["presets"]
    assert s["n_failed"] == 12 and all("no result from hydra/launcher=slurm" in j["reason"] for j in s["jobs"])
    assert any("12 job(s) wrote no result" in ln for ln in lines)


@pytest.mark.slow  # ~1 min on an idle machine: 3 toy jobs, one process each (a SLURM task)
def test_slurm_array_runs_the_unfinished_points_and_gives_the_pool_report(pool, fake_slurm, tmp_path, monkeypatch):
    """A partly finished reproduction on SLURM: the array has one task per lost point; the report is the pool's."""
    shutil.copytree(pool[0].parent, tmp_path / "root")
    out = _roots(monkeypatch, tmp_path / "root")
    (s,) = pool[1]["presets"]
    lost = {("discovery", 1), ("discovery", 4), ("replication", 10)}
    for j in s["jobs"]:
        if (j["set"], j["unit"]) in lost:
            (out / "jobs" / Path(j["job_dir"]).name / "results.json").unlink()
    report = reproduce([*TOY, "hydra/launcher=slurm", "hydra.launcher.array_parallelism=4"], echo=lambda s: None)
    (submission,) = [json.loads(line) for line in fake_slurm.read_text().splitlines()]
    assert "#SBATCH --array=0-2%3" in submission["script"].splitlines()
    assert {k for k, v in _statuses(report).items() if v == "ran"} == lost
    assert {v for k, v in _statuses(report).items() if k not in lost} == {"cached"}
    assert _outcome(report) == pool[2]
    assert report["environment"]["launcher"] == "slurm"


@pytest.mark.slow
def test_pool_rerun_recomputes_only_unfinished_jobs(pool, monkeypatch):
    """The pool's own resume (what a rerun always did): finished jobs are cache hits, a lost one is recomputed."""
    out, report, outcome = pool
    _roots(monkeypatch, out.parent)
    (s,) = report["presets"]
    lost = next(j for j in s["jobs"] if (j["set"], j["unit"]) == ("replication", 7))
    (Path(lost["job_dir"]) / "results.json").unlink()
    again = reproduce([*TOY, "jobs=2"], echo=lambda s: None)
    assert {k for k, v in _statuses(again).items() if v == "ran"} == {("replication", 7)}
    assert _outcome(again) == outcome


# ----------------------------------------------------------------------------- interruption
def _children(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    kids = set()
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited while listed
            continue
        if int(fields[1]) == pid:
            kids.add(int(stat_file.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow  # ~20 s: two worker processes start and run a toy job before the signal
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="lists processes through Linux /proc")
def test_sigterm_stops_the_worker_processes_and_the_run_resumes(lsx_dirs):
    """kill / scancel send SIGTERM to lsx.reproduce alone: its pool workers must stop with it (they ran on, orphaned)."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "lsx.reproduce", *TOY, "jobs=2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline, workers = time.time() + 120, set()
    while time.time() < deadline and len(workers) < 2:  # the two spawned workers (the resource tracker is a third child)
        workers = {p for p in _children(proc.pid) if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text(errors="ignore")}
        time.sleep(0.2)
    assert len(workers) == 2, "the pool's workers did not start"
    time.sleep(3)  # inside their first jobs
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted; finished jobs are kept: the same command resumes" in err, err[-2000:]
    deadline = time.time() + 10
    while time.time() < deadline and any(map(_alive, workers)):
        time.sleep(0.2)
    assert not [p for p in workers if _alive(p)], "worker processes outlived lsx.reproduce"
