"""Files written whole or not at all, and locks between processes: the one owner of both.

Every file the package writes for later reading (checkpoints, ``latest.json``, a run's ``config.yaml``,
``metrics.json``) goes through ``atomic_path``: it is written under a temporary name beside its target
(``<name>.tmp-<pid>``), flushed, and renamed over the target, so a kill or a full disk leaves the old file or the new
one, never a torn one. Locks are ``filelock``'s (``fcntl.flock`` on Linux: released by the kernel when the holder
dies, so a killed process never leaves a stale lock).
"""
from __future__ import annotations

import contextlib
import json
import os
from typing import Any, Iterator

import filelock

#: what marks a temporary file (a write killed before its rename leaves one behind)
TMP_MARK = ".tmp-"


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """A temporary name beside ``path`` to write to; renamed over ``path`` when the block succeeds, removed when it
    fails (a full disk leaves no orphan behind)."""
    tmp = f"{path}{TMP_MARK}{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_text_atomic(path: str, text: str) -> None:
    """``text`` into ``path``, whole or not at all (flushed to disk before the rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def write_json_atomic(data: Any, path: str) -> None:
    """``data`` as indented JSON into ``path``, whole or not at all."""
    write_text_atomic(path, json.dumps(data, indent=2))


class Busy(Exception):
    """An exclusive lock is held by another process; ``holder`` is what it wrote into the lock file."""

    def __init__(self, path: str, holder: str):
        super().__init__(f"'{path}' is locked by process {holder}")
        self.holder = holder


@contextlib.contextmanager
def exclusive(path: str, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the block, writing this process's PID into it. ``wait=False``: raise
    ``Busy`` at once when another process holds it."""
    lock = filelock.FileLock(path)
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except filelock.Timeout:
        with contextlib.suppress(OSError):
            with open(path, encoding="utf-8", errors="replace") as f:
                holder = f.read(32).strip()
            raise Busy(path, holder or "unknown") from None
        raise Busy(path, "unknown") from None
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(str(os.getpid()))
        yield
    finally:
        lock.release()


#: what marks a folder being written beside its target (``.<name>.staging-<pid>``)
STAGING_MARK = ".staging-"


def _exchange(a: str, b: str) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the system cannot."""
    import ctypes
    import errno
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # a filesystem without it
        return False
    raise OSError(err, os.strerror(err), b)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def staged_folder(folder: str) -> Iterator[str]:
    """A fresh folder beside ``folder`` to write into; when the block succeeds it replaces ``folder`` in one step
    (its old contents are removed after), when it fails it is removed and ``folder`` is as it was. A kill at any
    moment leaves ``folder`` old and whole or new and whole (a kill's leftover staging folder is swept by the next
    call). Where the system cannot swap two folders in one step, the old one is moved aside first: a kill in that
    instant leaves it whole as ``.<name>.staging-<pid>`` beside an absent ``folder``. A ``folder`` that is a symbolic
    link is written where it points (the link stays)."""
    import shutil
    folder = os.path.realpath(folder)
    parent, name = os.path.dirname(folder), os.path.basename(folder)
    os.makedirs(parent, exist_ok=True)
    prefix = f".{name}{STAGING_MARK}"
    for entry in os.listdir(parent):  # what killed writers left
        if entry.startswith(prefix) and entry[len(prefix):].isdigit() and not _alive(int(entry[len(prefix):])):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)
    stage = os.path.join(parent, f"{prefix}{os.getpid()}")
    shutil.rmtree(stage, ignore_errors=True)
    os.makedirs(stage)
    try:
        yield stage
        if not os.path.isdir(folder):
            os.rename(stage, folder)
            return
        if not _exchange(stage, folder):
            os.rename(folder, stage + ".old")
            os.rename(stage, folder)
            os.rename(stage + ".old", stage)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    shutil.rmtree(stage, ignore_errors=True)  # now the old contents


def user_cache(*parts: str) -> str:
    """This package's folder in the user's cache (``~/.cache/edgevit_paddle/<parts>``): compiled kernels, extracted
    archives."""
    return os.path.join(os.path.expanduser("~"), ".cache", "edgevit_paddle", *parts)
