"""Output that native libraries (Paddle's C++ side, oneDNN, paddle2onnx) print straight to the process's stdout and
stderr, below Python's ``sys.stdout``: silenced, or kept in a file to show when something fails."""
from __future__ import annotations

import contextlib
import os
import sys
from typing import IO, Optional


@contextlib.contextmanager
def native_output_redirected(enabled: bool = True, to: Optional[IO] = None):
    """Send file descriptors 1 and 2 to ``to`` (an open file), or to /dev/null, for the ``with`` block."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    target = to.fileno() if to is not None else os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved + ([target] if to is None else []):
            os.close(fd)
