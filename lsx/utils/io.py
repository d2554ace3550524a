"""Atomic file writes: readers never see a half-written file, a crash leaves the old one.

Files come out with the permissions a plain ``open()`` would give (0o666 & ~umask), not
mkstemp's private 0600, so a lab's shared cache stays readable to the group.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # portable fallback: read by setting, then restore
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path in the same directory; on success it replaces ``path`` (os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@contextmanager
def file_lock(directory: str | os.PathLike, name: str = ".lock") -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``directory/name`` (created with the directory).

    Concurrent processes (sweep jobs, two shells) asking for the same cached result wait here
    instead of computing it twice; the second then finds it finished.

    The holder may delete the directory, lock file included (a run that failed before its first
    checkpoint cleans up; it must do so while it holds the lock, or it could delete the directory a
    waiter has just started to fill). A waiter that opened the lock file before the deletion then
    gets the lock of a file no path names any more, while a newcomer would lock a fresh file at the
    same path: two holders. So a lock counts only when the path still names the file it locked;
    otherwise the waiter lets go and locks the file that is there now (recreating the directory).
    """
    import fcntl

    directory = Path(directory)
    path = directory / name
    while True:
        directory.mkdir(parents=True, exist_ok=True)
        try:
            fh = open(path, "a")
        except FileNotFoundError:  # the directory was deleted between mkdir and open: again
            continue
        try:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # say why nothing happens while another process computes the same result
                logging.getLogger("lsx").info(
                    "waiting for %s: another process holds its lock (computing the same result)", directory
                )
                fcntl.flock(fh, fcntl.LOCK_EX)
            if _names_open_file(path, fh):
                break
        except BaseException:
            fh.close()
            raise
        fh.close()  # a stale lock: closing the file releases it
    try:
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def _names_open_file(path: Path, fh: Any) -> bool:
    """Whether ``path`` still names the file open as ``fh`` (not deleted, not replaced)."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fh.fileno())
    return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)


def read_json(path: str | os.PathLike) -> Any:
    """``json.loads`` of a file whose error names the file and the fix (a damaged results file)."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is corrupt ({err}); delete {path.parent} so it is recomputed") from None


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` atomically and byte-reproducibly.

    torch names the zip archive inside the file after the file it writes to; saving straight
    to a random temp name would put that name into the bytes. Serializing to memory first
    gives the fixed name ``archive``, so equal content gives equal files.
    """
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def atomic_savez(path: str | os.PathLike, /, **arrays: Any) -> None:
    """``np.savez`` through a temp file and a rename, so a killed job leaves no truncated ``.npz``.

    Written to an open file rather than a name: ``np.savez`` appends ``.npz`` to a name without it (the temp
    file's), and the bytes are those of ``np.savez(path, ...)``. ``path`` is positional-only, so an array may
    be named ``path`` (the PCA trajectory's is)."""
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
