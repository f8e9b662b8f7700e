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
