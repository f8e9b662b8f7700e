"""The command-line tools, one module each, installed as console scripts (``edgevit-train``, ``edgevit-eval``,
``edgevit-export``, ``edgevit-infer``, ``edgevit-benchmark``, ``edgevit-summary``, ``edgevit-convert``) and run by
the thin ``tools/*.py`` scripts; and what they share: the error convention and small argument parsers."""
from __future__ import annotations

import sys
from typing import Callable, List, Optional, Sequence

from .. import paddle_noise
from ..errors import UserError


def add_switch_options(p, when: str = "") -> List[str]:
    """An option ``--<switch>`` for every variant switch a model family declares (``Classifier.switches``), its
    help listing each family's choices; returns the switch names (pass ``{s: getattr(args, s)}`` to
    ``create_model``, which drops the ones left unset and names the choices of a wrong value)."""
    from ..models.base import family_switches
    by_switch: dict = {}
    for family, switches in family_switches().items():
        for name, choices in switches.items():
            by_switch.setdefault(name, []).append(f"{family}: {', '.join(str(c) for c in choices)}")
    for name, families in by_switch.items():
        p.add_argument(f"--{name}", help=f"{when}the {name} switch ({'; '.join(families)}; default: the preset's)")
    return list(by_switch)


def run(main: Callable[[Optional[Sequence[str]]], int], argv: Optional[Sequence[str]] = None) -> None:
    """Run a tool's ``main``; a ``UserError`` becomes ``error: <message>`` on stderr with exit code 2. Anything else
    is a bug and keeps its traceback (exit code 1)."""
    paddle_noise.quiet()
    try:
        code = main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)


def parse_shape(text: str) -> List[int]:
    """'1,3,224,224' -> [1, 3, 224, 224]."""
    try:
        shape = [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        raise UserError(f"cannot read the shape {text!r}: give integers separated by commas, "
                        "e.g. 1,3,224,224") from None
    if not shape or any(v < 1 for v in shape):
        raise UserError(f"invalid shape '{text}': every dimension must be a positive integer, e.g. 1,3,224,224")
    return shape
