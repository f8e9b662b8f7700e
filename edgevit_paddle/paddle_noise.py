"""Paddle's warnings that say nothing to our users, and the one place that silences them (the command-line tools and
the tests call ``quiet``; importing the package silences them only around its own ``import paddle``)."""
from __future__ import annotations

import warnings

#: the start of each message silenced (matched anywhere in the warning's text)
PADDLE_NOISE = (
    "No ccache found",  # importing Paddle: ccache is a C++ build cache, irrelevant here
    "When training, we now always track global mean",  # BatchNorm in train mode, every build
    "To copy construct from a tensor",  # paddle.to_tensor(tensor)
    "Tensor do not have 'place' interface",  # dy2static on a static value's place
)


def quiet() -> None:
    """Silence ``PADDLE_NOISE`` for the rest of the process (or of the enclosing ``warnings.catch_warnings``)."""
    for text in PADDLE_NOISE:
        warnings.filterwarnings("ignore", message=f".*{text}")
