"""The seeds of a run's randomness, as functions of (run seed, absolute epoch, sample) only: a resumed run, in any
process or loader worker, draws exactly what the uninterrupted run drew."""
from __future__ import annotations

import contextlib
import random

import numpy as np


def sample_seed(seed: int, epoch: int, index: int, *draw: int) -> int:
    """The seed of one sample's random transforms: a function of (run seed, absolute epoch, sample index, and which
    draw of that sample in the epoch) only."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, epoch, index, *draw]).generate_state(1)[0])


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of an epoch's model randomness (dropout, drop path): a function of (run seed, absolute epoch)."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, epoch]).generate_state(1)[0])


@contextlib.contextmanager
def seeded_transforms(seed: int):
    """Python's ``random`` and NumPy's global generator (what ``paddle.vision.transforms`` draws from) seeded for one
    sample, and given back as they were."""
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
