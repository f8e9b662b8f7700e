"""The one family of errors the user can fix.

Every error we raise because of the user's input (a config key, a data folder, a model name, a weights file, an
exported model, an option of a tool) derives from ``UserError``; its message is one line naming the problem and the
fix. The command-line tools turn exactly these into ``error: <message>`` and exit code 2 (``cli.run``). Anything else
-- a ``KeyError`` or ``TypeError`` from our own code, an error inside Paddle -- is a bug and keeps its traceback.

The subclasses also derive from the built-in exception a Python caller would expect (``ValueError`` for a bad value,
``FileNotFoundError`` for a missing file), so ``except ValueError`` around ``create_model`` keeps working.
"""
from __future__ import annotations

__all__ = ["UserError", "ConfigError", "DataError", "ModelError", "InputError", "WeightsError",
           "MissingFileError", "ExportError", "PredictorError", "CheckpointError", "TrainingError",
           "BenchmarkError", "first_line", "did_you_mean", "raised_in_our_code"]


class UserError(Exception):
    """A problem the user can fix; the message is one line with the fix."""


class ConfigError(UserError, ValueError):
    """A config file, key, value or ``-o`` override is wrong."""


class DataError(UserError, ValueError):
    """A dataset cannot be opened or read (missing files, empty classes, unreadable images)."""


class ModelError(UserError, ValueError):
    """A model cannot be built as asked: unknown name, switch or argument, or an impossible size."""


class InputError(ModelError):
    """A tensor given to a model has the wrong dtype, number of dimensions, channels, height or width."""


class WeightsError(UserError, ValueError):
    """Weights do not fit the model they are loaded into (another model or variant, missing or mis-shaped tensors)."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist or is not what was expected."""


class ExportError(UserError, ValueError):
    """A model cannot be exported as configured."""


class PredictorError(UserError, ValueError):
    """An exported model cannot be loaded or run as asked (missing files, an impossible device or precision)."""


class CheckpointError(UserError, ValueError):
    """A checkpoint cannot be resumed as asked (a missing optimizer state, a damaged file)."""


class TrainingError(UserError, ValueError):
    """Training cannot go on (e.g. the loss became NaN); the message names the last good checkpoint."""


class BenchmarkError(UserError, ValueError):
    """A benchmark cannot run as asked (unknown model or variant, a mode this machine cannot run)."""


def first_line(e: BaseException, limit: int = 200) -> str:
    """The first non-empty line of an exception's message, at most ``limit`` characters; the exception's type name
    when the message is empty (a bare ``MemoryError()``)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[0] if lines else type(e).__name__)[:limit]


def did_you_mean(word: object, options, n: int = 1, cutoff: float = 0.6) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``options`` to ``word``, or ``""`` when none is close."""
    import difflib
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=n, cutoff=cutoff)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def raised_in_our_code(e: BaseException) -> bool:
    """Whether ``e`` was raised by code that is not a library's below the frame that caught it (this package's, or a
    caller's own, anything outside the standard library and the installed packages): then it is a bug there and keeps
    its traceback, even when its type (a ``TypeError``, a ``KeyError``) is one a library also raises for a damaged
    file."""
    import os
    import sysconfig
    tb = e.__traceback__
    if tb is None or tb.tb_next is None:  # raised in the catching frame itself, or by C code it called
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    file = tb.tb_frame.f_code.co_filename
    if file.startswith("<"):  # frozen or generated code: the interpreter's
        return False
    file = os.path.abspath(file)
    if file.startswith(os.path.dirname(os.path.abspath(__file__)) + os.sep):
        return True
    libraries = {os.path.abspath(p) + os.sep for k, p in sysconfig.get_paths().items()
                 if k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return not file.startswith(tuple(libraries))
