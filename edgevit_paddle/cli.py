"""What every command-line tool shares: the error convention and small argument parsers."""
from __future__ import annotations

import sys
import warnings
from typing import Callable, List, Optional, Sequence


class UserError(Exception):
    """A problem the user can fix; tools print it as one line and exit 2."""


# Errors raised by our own checks (config, data, model build) carry a message meant for the user.
USER_ERRORS = (UserError, ValueError, FileNotFoundError, KeyError, ImportError, NotADirectoryError)


KNOWN_NOISE = ("No ccache found", "When training, we now always track global mean", "To copy construct from a tensor")


def quiet_known_warnings() -> None:
    """Silence Paddle warnings that say nothing to our users (the same list as pytest.ini)."""
    for text in KNOWN_NOISE:
        warnings.filterwarnings("ignore", message=f".*{text}")


def run(main: Callable[[Optional[Sequence[str]]], int], argv: Optional[Sequence[str]] = None) -> None:
    """Run a tool's ``main`` and turn user-fixable errors into ``error: ...`` on stderr with exit code 2."""
    quiet_known_warnings()
    try:
        code = main(argv)
    except USER_ERRORS as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)


def parse_shape(text: str) -> List[int]:
    """'1,3,224,224' -> [1, 3, 224, 224]."""
    try:
        shape = [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        raise UserError(f"cannot read the shape '{text}': give integers separated by commas, e.g. 1,3,224,224")
    if not shape or any(v < 1 for v in shape):
        raise UserError(f"invalid shape '{text}': every dimension must be a positive integer, e.g. 1,3,224,224")
    return shape
