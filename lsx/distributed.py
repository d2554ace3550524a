"""One analysis job spread over several processes (torchrun, srun, the submitit launcher).

Why here and not in the numerical core: the core (:func:`lsx.landscape.engine.surface.compute_surface`,
:meth:`lsx.landscape.engine.evaluator.Evaluator.evaluate`) already shards points over the ranks of an
initialized process group; this module is the job-level half. It initializes the group once from the
launcher's environment (one device per rank), and keeps every rank in step where a job has side
effects: rank 0 owns the job directory and decides what is cached (the other ranks run the job in a
scratch directory and receive rank 0's stages and finished points); missing optima train once each, in
parallel, one per rank (:func:`lsx.training.runner.train_all`), with the launcher's environment hidden from
Lightning; a job that does not shard runs on rank 0 alone while the others wait (:func:`alone_on_rank0`).

Nothing changes in a single process: without a launcher (or with 1 rank) no group is created and
every helper here is the identity.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import subprocess
from typing import Any, Callable, Iterator, TypeVar

import torch

log = logging.getLogger("lsx.distributed")

T = TypeVar("T")

# how long a rank waits for another: rank 0 may train the job's optima (hours) while the others wait
DEFAULT_TIMEOUT_MIN = 24 * 60

# variables through which Lightning (and torch) would detect a multi-process launch
_LAUNCH_ENV = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "ROLE_RANK",
    "ROLE_WORLD_SIZE",
    "TORCHELASTIC_RUN_ID",
    "TORCHELASTIC_RESTART_COUNT",
    "TORCHELASTIC_MAX_RESTARTS",
    "MASTER_ADDR",
    "MASTER_PORT",
    "SLURM_NTASKS",
    "SLURM_NTASKS_PER_NODE",
    "SLURM_PROCID",
    "SLURM_LOCALID",
    "SLURM_STEP_NUM_TASKS",
    "OMPI_COMM_WORLD_SIZE",
    "OMPI_COMM_WORLD_RANK",
    "PMI_SIZE",
    "PMI_RANK",
)


_ALONE = False  # rank 0 runs a job that does not shard, alone: the job sees one process (see alone_on_rank0)


def rank_world() -> tuple[int, int]:
    """(rank, world size) as a job sees them: the default process group's; (0, 1) when none is initialized,
    or while rank 0 runs a job that does not shard alone (:func:`alone_on_rank0`)."""
    return (0, 1) if _ALONE else group_rank_world()


def group_rank_world() -> tuple[int, int]:
    """(rank, world size) of the default process group itself, even while rank 0 runs a job alone."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def launch_env() -> dict[str, Any] | None:
    """rank, world, local_rank, master addr/port from torchrun's or SLURM's variables; None for 1 process."""
    env = os.environ
    if "WORLD_SIZE" in env and "RANK" in env:  # torchrun / torch.distributed.launch (also sets MASTER_*)
        world = int(env["WORLD_SIZE"])
        return (
            None
            if world <= 1
            else {
                "rank": int(env["RANK"]),
                "world": world,
                "local_rank": int(env.get("LOCAL_RANK", 0)),
                "addr": env.get("MASTER_ADDR", "127.0.0.1"),
                "port": int(env.get("MASTER_PORT", 29500)),
            }
        )
    # srun / submitit with tasks_per_node: the step's tasks (a batch script of an --ntasks=4 allocation run
    # without srun has SLURM_NTASKS=4 but no step of 4 tasks: it is one process)
    if "SLURM_PROCID" in env and int(env.get("SLURM_STEP_NUM_TASKS", "1")) > 1:
        return {
            "rank": int(env["SLURM_PROCID"]),
            "world": int(env["SLURM_STEP_NUM_TASKS"]),
            "local_rank": int(env.get("SLURM_LOCALID", 0)),
            "addr": env.get("MASTER_ADDR") or _first_slurm_host(),
            "port": int(env.get("MASTER_PORT") or 20000 + int(env.get("SLURM_JOB_ID", "0")) % 20000),
        }
    return None


def _first_slurm_host() -> str:
    nodelist = os.environ.get("SLURM_JOB_NODELIST") or os.environ.get("SLURM_NODELIST")
    if not nodelist:
        return "127.0.0.1"
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True)
        return out.stdout.split()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        try:  # submitit parses SLURM node lists without scontrol
            from submitit.slurm.slurm import _parse_node_list

            return _parse_node_list(nodelist)[0]
        except Exception as e:
            raise ValueError(f"cannot find the first host of SLURM_JOB_NODELIST={nodelist!r}; set MASTER_ADDR") from e


def init_from_env(timeout_min: float | None = None) -> tuple[int, int]:
    """Initialize torch.distributed once from the launcher's environment; returns (rank, world).

    Backend nccl with one CUDA device per rank (``LOCAL_RANK``) when CUDA is present, else gloo on
    CPU (``LSX_DIST_BACKEND=gloo`` forces CPU processes on a GPU machine). A no-op without a launcher, with 1 rank,
    or when a group already exists.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return rank_world()
    spec = launch_env()
    if spec is None:
        return 0, 1
    if not torch.distributed.is_available():
        raise ValueError(f"{spec['world']} processes launched, but this torch build has no torch.distributed")
    timeout = float(timeout_min or os.environ.get("LSX_DIST_TIMEOUT_MIN") or DEFAULT_TIMEOUT_MIN)
    backend = os.environ.get("LSX_DIST_BACKEND") or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend not in ("nccl", "gloo"):
        raise ValueError(f"LSX_DIST_BACKEND={backend!r}; valid: nccl (one GPU per rank), gloo (CPU)")
    cuda = backend == "nccl"
    if cuda:
        n_gpus = torch.cuda.device_count()
        if n_gpus == 1:  # SLURM's per-task GPU binding shows each task only its own GPU
            torch.cuda.set_device(0)
        elif spec["local_rank"] < n_gpus:
            torch.cuda.set_device(spec["local_rank"])
        else:
            raise ValueError(
                f"local rank {spec['local_rank']} but {n_gpus} visible GPU(s); launch at most one "
                "process per GPU (--nproc_per_node / tasks_per_node), or LSX_DIST_BACKEND=gloo for CPU ranks"
            )
    os.environ.setdefault("MASTER_ADDR", spec["addr"])  # torchrun sets both; SLURM does not
    os.environ.setdefault("MASTER_PORT", str(spec["port"]))
    torch.distributed.init_process_group(
        backend=backend,
        init_method="env://",
        rank=spec["rank"],
        world_size=spec["world"],
        timeout=datetime.timedelta(minutes=timeout),
    )
    import atexit

    atexit.register(shutdown)  # kept for the process's life: a sweep's jobs reuse it (no re-rendezvous per job)
    log.info("rank %d of %d on %s", spec["rank"], spec["world"], device())
    return spec["rank"], spec["world"]


def shutdown() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def device() -> torch.device:
    """This rank's device for landscape evaluation: its CUDA device under nccl, else the CPU."""
    rank, world = group_rank_world()
    if world > 1 and torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def training_devices(trainer: dict[str, Any]) -> Any:
    """``trainer.devices`` for a one-device run trained by a rank of a launched analysis: this rank's GPU.

    Why: the ranks train their shares of the missing optima at the same time (:func:`lsx.training.runner.train_all`),
    and Lightning's ``devices=1`` means GPU 0 on every rank. Anything else (CPU, several devices) is left as it is;
    the device does not enter the training cache key."""
    devices = trainer.get("devices", 1)
    accelerator = str(trainer.get("accelerator", "cpu"))
    here = device()
    if here.type == "cuda" and accelerator in ("gpu", "cuda", "auto") and str(devices) in ("1", "auto"):
        return [here.index]
    return devices


def from_rank0(value: T) -> T:
    """Rank 0's ``value`` on every rank (pickled); the value itself with 1 rank."""
    if rank_world()[1] == 1:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _group_broadcast(value: T) -> T:
    """Rank 0's ``value`` on every rank of the process group (pickled), whatever the job sees."""
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


@contextlib.contextmanager
def alone_on_rank0(job: str) -> Iterator[None]:
    """Rank 0 runs ``job``, which does not shard, as one process while the other ranks wait in
    :func:`serve_rank0` (and train the optima it asks for, :func:`on_every_rank`); one warning says so.

    Why: such a job run on every rank repeats all its work N times (N GPUs for the time of one). Inside the
    block :func:`rank_world` and the engine's evaluator see one process; at its end (or on an error) the
    waiting ranks are released, and told of rank 0's error so that they stop with it."""
    global _ALONE
    from lsx.landscape.engine.evaluator import one_process

    _, world = group_rank_world()
    log.warning("%s does not shard over ranks: it runs on rank 0 only, the other %d rank(s) wait", job, world - 1)
    error = None
    _ALONE = True
    try:
        with one_process():
            yield
    except BaseException as e:
        error = f"{type(e).__name__}: {e}"
        raise
    finally:
        _ALONE = False
        _group_broadcast(("done", error))


def serve_rank0() -> None:
    """A rank > 0 while rank 0 runs a job alone (:func:`alone_on_rank0`): run the work rank 0 hands out
    (:func:`on_every_rank`: its share of the missing optima) until rank 0 is done; rank 0's error is raised here."""
    failed = None
    while True:
        kind, payload = _group_broadcast(None)
        if kind == "done":
            if payload is not None:
                raise RuntimeError(f"rank 0 failed: {payload}")
            if failed is not None:
                raise failed
            return
        fn, args = payload
        try:
            fn(*args)
        except Exception as e:  # every rank raises it (fn gathers errors); rank 0 decides whether the job goes on
            failed = e


def on_every_rank(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on every rank of the process group with rank 0's ``args``: called by all ranks of a sharded
    job, or by rank 0 alone inside :func:`alone_on_rank0` (the waiting ranks are handed ``fn`` and ``args``).
    ``fn`` must be a module-level function (it is pickled by name) and may use the group's collectives."""
    if group_rank_world()[1] == 1:
        return fn(*args)
    if _ALONE:
        _group_broadcast(("call", (fn, args)))
    else:
        args = _group_broadcast(args)
    return fn(*args)


def barrier() -> None:
    if rank_world()[1] > 1:
        if torch.distributed.get_backend() == "nccl":
            torch.distributed.barrier(device_ids=[torch.cuda.current_device()])
        else:
            torch.distributed.barrier()


@contextlib.contextmanager
def single_process_env() -> Iterator[None]:
    """Hide the launcher's variables (torchrun, SLURM) so Lightning trains as one process, then restore them."""
    import warnings

    saved = {k: os.environ.pop(k) for k in _LAUNCH_ENV if k in os.environ}
    try:
        with warnings.catch_warnings():  # Lightning sees the sharding group and suggests sync_dist: not its concern
            warnings.filterwarnings("ignore", message=".*sync_dist=True.*")
            yield
    finally:
        os.environ.update(saved)


def once_on_rank0(fn: Callable[[], T]) -> T:
    """``fn()`` on rank 0 first (launcher env hidden), then on the others (for training: a cache hit).

    Why: N ranks asking the training cache for a missing run would train it N times (or, with one
    shared lock, N−1 ranks would time out their collectives). A failure on rank 0 is raised on every rank.
    Several runs train in parallel, one per rank, with :func:`lsx.training.runner.train_all`.
    """
    rank, world = rank_world()
    if world == 1:
        return fn()
    if rank == 0:
        try:
            with single_process_env():
                out = fn()
        except BaseException as e:
            from_rank0(f"{type(e).__name__}: {e}")
            raise
        from_rank0(None)
        return out
    error = from_rank0(None)
    if error is not None:
        raise RuntimeError(f"rank 0 failed: {error}")
    with single_process_env():
        return fn()


def computed_on_rank0(fn: Callable[[], T]) -> T:
    """``fn()`` on rank 0 alone, its value sent to every rank: for local work (no collectives) whose result
    every rank needs, e.g. Hessian eigenvectors that define a job's directions; the other ranks wait instead
    of repeating it. A failure on rank 0 is raised on every rank."""
    rank, world = rank_world()
    if world == 1:
        return fn()
    if rank == 0:
        try:
            value = fn()
        except BaseException as e:
            from_rank0(("error", f"{type(e).__name__}: {e}"))
            raise
        return from_rank0(("ok", value))[1]
    kind, value = from_rank0(None)
    if kind == "error":
        raise RuntimeError(f"rank 0 failed: {value}")
    return value


def shared_stage(path: Any, compute: Callable[[], T], load: Callable[[], T], save: Callable[[T], None]) -> T:
    """A job stage under several ranks: rank 0's stored value on every rank, or computed by all (their
    collectives stay in step) and saved by rank 0. ``path`` is rank 0's file."""
    rank, _ = rank_world()
    found, value = False, None
    if rank == 0 and path.exists():
        try:
            value, found = load(), True
        except Exception as e:  # a foreign or damaged file: recompute rather than fail
            log.warning("stage %s unreadable (%s); recomputing", path, e)
    found, value = from_rank0((found, value))
    if found:
        return value
    value = from_rank0(compute())  # rank 0's, in case compute() is not deterministic across processes
    if rank == 0:
        save(value)
    return value


def secondary_training_rank(trainer: dict[str, Any]) -> bool:
    """Whether this process is a rank > 0 of a multi-process Lightning training (``lsx.train trainer=ddp``).

    Why: Lightning's subprocess launcher re-runs the script for ranks 1..N-1 (and torchrun / srun start
    every rank themselves); rank 0 holds the run's file lock while it waits for them to join, so a rank > 0
    that asks for the same lock waits forever. Such a rank trains under rank 0's lock instead. Spawning
    strategies (``ddp_spawn``) start their workers inside ``fit`` and never reach the cache: always False.
    """
    strategy = str(trainer.get("strategy", "auto"))
    if not ("ddp" in strategy or "fsdp" in strategy) or "spawn" in strategy or "fork" in strategy or "notebook" in strategy:
        return False
    env = os.environ
    return any(int(env.get(k) or 0) > 0 for k in ("RANK", "SLURM_PROCID", "NODE_RANK", "GROUP_RANK", "LOCAL_RANK"))


def check_training_can_relaunch(trainer: dict[str, Any]) -> None:
    """Refuse, in one line, to start DDP training whose launcher would re-run an analysis or reproduce command.

    Why: with a ``ddp``/``fsdp`` strategy Lightning starts ranks 1..N-1 by running this process's command again;
    for ``lsx.train`` that is the same training, for ``lsx.analyze`` it would be the whole analysis once more per
    rank. Spawning strategies, ranks > 0 and launches whose ranks already exist (torchrun, srun) are not affected.
    """
    import sys

    strategy = str(trainer.get("strategy", "auto"))
    if not ("ddp" in strategy or "fsdp" in strategy) or any(s in strategy for s in ("spawn", "fork", "notebook")):
        return
    if any(k in os.environ for k in ("LOCAL_RANK", "RANK")) or launch_env() is not None:
        return
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    entry = getattr(spec, "name", "") or ""
    if entry.split(".")[-1] in ("analyze", "reproduce") and entry.startswith("lsx."):
        raise ValueError(
            f"trainer.strategy={strategy} would train a missing optimum by re-running `python -m {entry}` once per "
            "process; train the optima first with `python -m lsx.train -m trainer=... seed=...` (same trainer "
            "settings), or use trainer.strategy=ddp_spawn"
        )


def check_single_device_trainer(trainer: dict[str, Any]) -> None:
    """A sharded job trains each missing optimum on one rank: a multi-process trainer would relaunch the job."""
    if rank_world()[1] == 1:
        return
    strategy, devices = str(trainer.get("strategy", "auto")), trainer.get("devices", 1)
    if "ddp" in strategy or "fsdp" in strategy or devices not in (1, "1", "auto"):
        raise ValueError(
            f"trainer strategy={strategy!r} devices={devices!r} under {rank_world()[1]} launched processes: a sharded "
            "analysis trains each missing optimum on one rank with one device; use trainer=cpu or trainer=gpu "
            "(or pre-train with `python -m lsx.train trainer=ddp` and analyze it in one process with the same trainer "
            "settings, which key the model: `python -m lsx.analyze trainer=ddp ...`)"
        )


def scratch_run_dir_overrides(argv: list[str]) -> list[str]:
    """Hydra overrides for a rank > 0 of a launched job: its run directory is a scratch one (deleted at
    exit), so only rank 0 leaves a run directory. Nothing for rank 0 or a single process."""
    spec = launch_env()
    if spec is None or spec["rank"] == 0:
        return []
    import atexit
    import shutil
    import tempfile

    remove_orphaned_scratch_dirs()
    # the pid in the name: a rank killed by SIGKILL runs no atexit, and the next start removes its folder
    scratch = tempfile.mkdtemp(prefix=f"lsx-rank{spec['rank']}-pid{os.getpid()}-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    if any(a in ("-m", "--multirun") for a in argv):  # a sweep under torchrun: its jobs run one after another, sharded
        return [f"hydra.sweep.dir={scratch}"]
    return [f"hydra.run.dir={scratch}", "hydra.output_subdir=null"]


def remove_orphaned_scratch_dirs(tmp: str | None = None) -> list[str]:
    """Delete the scratch run directories (``lsx-rank<r>-pid<p>-*`` in the temp dir) of ranks whose process is
    gone (killed by SIGKILL, which skips their atexit cleanup); returns what was removed."""
    import re
    import shutil
    import tempfile
    from pathlib import Path

    removed = []
    for d in Path(tmp or tempfile.gettempdir()).glob("lsx-rank*-pid*-*"):
        m = re.fullmatch(r"lsx-rank\d+-pid(\d+)-.*", d.name)
        if m is None or not d.is_dir() or _alive(int(m.group(1))):
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(str(d))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def run_memo_loop_sharded(
    ctx: Any, prefix: str, loop: Callable[[Callable], T], placeholder: Callable[[], Any], per_rank: int = 1
) -> T:
    """A job's resumable loop of independent items (``loop(memo)`` hands each item to ``memo(key, compute)``, in
    the same order on every rank) spread over the ranks, saved in blocks as it goes.

    Pass 1 runs the loop with the items rank 0 has not stored dealt round robin: the j-th of them is computed
    on rank ``j % world`` (the others get ``placeholder()``); after every ``world × per_rank`` of them the block's
    items are gathered and rank 0 stores each one as a stage, so a killed launch loses at most one block per
    rank and a relaunch (with any number of ranks) skips what is stored. Pass 2 runs the loop on every rank
    from the stored items. With 1 rank: ``loop(ctx.memo(prefix))``.
    """
    rank, world = rank_world()
    memo = ctx.memo(prefix)
    if world == 1:
        return loop(memo)
    if per_rank < 1:
        raise ValueError(f"per_rank={per_rank}; valid: >= 1 items per rank and block")
    stored = from_rank0({p.stem[len(prefix) :] for p in (ctx.job_dir / "stages").glob(f"{prefix}*.pt")} if rank == 0 else None)
    block: dict[str, Any] = {}
    dealt = [0]  # items not stored, dealt so far (the same count on every rank)

    def save_block() -> None:
        gathered: list[dict[str, Any]] = [{} for _ in range(world)]
        torch.distributed.all_gather_object(gathered, block)
        for part in gathered:
            for key, value in part.items():
                memo(key, lambda v=value: v)  # rank 0 saves it (a stage), every rank agrees on it
        block.clear()

    def shard(key: str, compute: Callable[[], Any]) -> Any:
        if key in stored:
            return placeholder()
        j, dealt[0] = dealt[0], dealt[0] + 1
        value = placeholder()
        if j % world == rank:
            value = block[key] = compute()
        if dealt[0] % (world * per_rank) == 0:
            save_block()
        return value

    loop(shard)
    if dealt[0] % (world * per_rank):
        save_block()
    return loop(memo)


def free_port() -> int:
    """A free TCP port on this machine, for a one-machine rendezvous (tests, benchmarks, local launches)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def local_rank_env(rank: int, world: int, port: int, backend: str = "gloo") -> dict[str, str]:
    """The environment torchrun gives rank ``rank`` of ``world`` processes on one machine (what
    :func:`launch_env` reads), for starting ranks with ``torch.multiprocessing.spawn``."""
    return {
        "RANK": str(rank),
        "WORLD_SIZE": str(world),
        "LOCAL_RANK": str(rank),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "LSX_DIST_BACKEND": backend,
    }
