"""What one training run works with: its config, model, data, folder, state and resume point (``Run``), handed whole
to the trainer's steps and to ``EpochLoop`` instead of a dozen parameters each."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

import paddle.nn as nn

from ..data import LabeledDataset
from .checkpoint_saver import CheckpointSaver
from .ema import ModelEMA
from .run_state import RunState


@dataclass
class RunData:
    train: LabeledDataset
    eval: LabeledDataset

    @property
    def num_classes(self) -> int:
        return self.train.info.num_classes


@dataclass
class Run:
    """One training run. ``latest`` is the checkpoint state it resumes from (None: a new run, or a resumed run that
    stopped before its first checkpoint); ``pretrained`` the log line of the weights it fine-tunes from."""

    cfg: Dict[str, Any]
    net: nn.Layer
    data: RunData
    folder: str
    state: RunState
    saver: CheckpointSaver
    rank: int = 0
    world_size: int = 1
    threads: Optional[int] = None
    resumed: bool = False
    latest: Optional[Dict[str, Any]] = None
    weights_only: bool = False
    ema: Optional[ModelEMA] = None
    pretrained: Optional[str] = None

    @property
    def writes(self) -> bool:
        """Whether this process writes the run's files (rank 0 only)."""
        return self.rank == 0

    @property
    def batch_size(self) -> int:
        return self.cfg["Data"]["Train"]["batch_size"]

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    @property
    def epochs(self) -> int:
        return self.cfg["Global"]["epochs"]

    @property
    def seed(self) -> int:
        """This process's seed (the config's, plus its rank)."""
        return self.cfg["Global"]["seed"] + self.rank

    @property
    def metrics_dir(self) -> Optional[str]:
        """Where ``metrics.json`` goes: the run folder in the writing process, None in the others."""
        return self.folder if self.writes else None
