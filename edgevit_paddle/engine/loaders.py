"""The training run's data loaders: sharded per process as ``paddle.Model.fit`` would build them, but reproducible
from (seed, absolute epoch, step) alone, so that a resumed run sees the batches the uninterrupted run saw.

- the sampler (``DistributedBatchSampler``, or ``RepeatedAugSampler`` with ``Data.Train.sampler: repeated``) shuffles
  with a seed of its epoch;
- ``_EpochTagged`` turns its indices into ``(epoch, index, draw)`` keys, from which the dataset seeds each sample's
  augmentation (``LabeledDataset``);
- ``EpochSeed`` seeds Paddle's generator (dropout, drop path) per epoch;
- ``TrainBatches`` (the main process) applies Mixup/CutMix with a generator seeded per (seed, epoch, step), drops the
  dataset's third field and lists the unreadable images met in the epoch once, at its end.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Optional

import numpy as np
import paddle

from ..data.datasets import epoch_seed, sample_seed
from ..data.mixup import Mixup
from ..data.samplers import RepeatedAugSampler

log = logging.getLogger("edgevit_paddle")

#: tells the seed of a step's Mixup/CutMix draws apart from the samples' seeds
_MIX_STREAM = 0x6D6978


class _Loader(paddle.io.DataLoader):
    """A DataLoader that remembers its live iterator, so that a run ending in an error can stop the worker processes
    at once (otherwise they live as long as the exception's traceback, and can hold up interpreter exit)."""

    def __iter__(self):
        self._live = super().__iter__()
        return self._live

    def shutdown(self) -> None:
        it, self._live = getattr(self, "_live", None), None
        if hasattr(it, "_try_shutdown_all"):
            it._try_shutdown_all()


class EpochSeed(paddle.callbacks.Callback):
    """Paddle's generator (dropout, drop path) seeded at each epoch's start from (seed, absolute epoch): a run resumed
    from an epoch's checkpoint draws what the uninterrupted run drew from there on."""

    def __init__(self, seed: int, epochs_done: int):
        super().__init__()
        self.seed, self.first = seed, epochs_done

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        paddle.seed(epoch_seed(self.seed, self.first + epoch))


class _EpochTagged(paddle.io.BatchSampler):
    """Batches of ``(absolute epoch, index, draw)`` keys; ``draw`` numbers this process's draws in the epoch, unique
    over the processes, so the copies of an image that repeated augmentation deals out are augmented differently."""

    def __init__(self, inner: paddle.io.BatchSampler, first_epoch: int, rank: int = 0, world_size: int = 1):
        self.inner, self.epoch, self.rank, self.world = inner, first_epoch, rank, world_size

    def __iter__(self):
        epoch, self.epoch = self.epoch, self.epoch + 1
        n = 0
        for batch in self.inner:
            keys = []
            for i in batch:
                keys.append((epoch, i, n * self.world + self.rank))
                n += 1
            yield keys

    def __len__(self) -> int:
        return len(self.inner)


class TrainBatches:
    """The training loader as ``fit`` sees it: ``[images, labels]`` batches, mixed when ``mixup`` is set (soft
    targets), with the unreadable images of each epoch listed once at its end."""

    def __init__(self, loader: _Loader, dataset, seed: int, first_epoch: int, mixup: Optional[Mixup] = None):
        self.loader, self.dataset, self.seed, self.epoch, self.mixup = loader, dataset, seed, first_epoch, mixup

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        epoch, self.epoch = self.epoch, self.epoch + 1
        unreadable = set()
        for step, (x, y, skipped) in enumerate(self.loader):
            unreadable.update(int(v) for v in skipped.numpy().reshape(-1) if v >= 0)
            if self.mixup is not None:
                rng = np.random.RandomState(sample_seed(self.seed, epoch, step, _MIX_STREAM) % 2**32)
                x, y = self.mixup(x, y, rng)
            yield [x, y]
        if unreadable:
            names = [self.dataset.item_name(i) for i in sorted(unreadable)]
            log.warning(f"epoch {epoch + 1}: {len(names)} unreadable image(s) replaced by the next readable one: "
                        + ", ".join(names[:20]) + (" ..." if len(names) > 20 else ""))

    def shutdown(self) -> None:
        self.loader.shutdown()


def build_loaders(cfg: Dict[str, Any], train_ds, eval_ds, epochs_done: int, num_classes: int,
                  rank: int = 0, world_size: int = 1):
    """(training batches, eval loader) of a run that has done ``epochs_done`` epochs."""
    d, seed = cfg["Data"], cfg["Global"]["seed"]
    shuffle = d["Train"]["shuffle"] is not False
    if d["Train"]["sampler"] == "repeated":
        sampler: Any = RepeatedAugSampler(train_ds, d["Train"]["batch_size"], d["Train"]["repeats"], shuffle=shuffle)
    else:
        sampler = paddle.io.DistributedBatchSampler(train_ds, d["Train"]["batch_size"], shuffle=shuffle,
                                                    drop_last=True)
    sampler.set_epoch(seed * 10007 + epochs_done)  # the sampler seeds its shuffle with the epoch
    train_ds.seed = seed
    train_loader = _Loader(train_ds, batch_sampler=_EpochTagged(sampler, epochs_done, rank, world_size),
                           num_workers=d["num_workers"])
    train = TrainBatches(train_loader, train_ds, seed + rank, epochs_done, Mixup.from_config(cfg, num_classes))
    eval_sampler = paddle.io.DistributedBatchSampler(eval_ds, d["Eval"]["batch_size"], shuffle=False)
    eval_loader = _Loader(eval_ds, batch_sampler=eval_sampler, num_workers=d["num_workers"])
    return train, eval_loader
