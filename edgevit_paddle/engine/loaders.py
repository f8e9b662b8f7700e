"""The training run's data loaders: sharded per process as ``paddle.Model.fit`` would build them, but reproducible
from (seed, absolute epoch, step) alone, so that a resumed run sees the batches the uninterrupted run saw.

The trainer's loop owns the epoch and hands it over with ``TrainBatches.set_epoch`` before each epoch:

- the sampler (``DistributedBatchSampler``, or ``RepeatedAugSampler`` with ``Data.Train.sampler: repeated``) shuffles
  with a seed of the epoch;
- ``_EpochTagged`` turns its indices into ``(epoch, index, draw)`` keys, from which the dataset seeds each sample's
  augmentation (``LabeledDataset``);
- ``TrainBatches`` (the main process) applies Mixup/CutMix with a generator seeded per (seed, epoch, step), drops the
  dataset's third field and lists the unreadable images met in the epoch once, at its end.

Seeds use the epoch's 0-based index (``epoch - 1``).
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Optional

import numpy as np
import paddle

from ..data.mixup import Mixup
from ..data.samplers import RepeatedAugSampler
from ..data.seeding import sample_seed
from ..paddle_compat import abort_loader_iterator, loader_thread, shutdown_loader_iterator

log = logging.getLogger("edgevit_paddle")

#: tells the seed of a step's Mixup/CutMix draws apart from the samples' seeds
_MIX_STREAM = 0x6D6978


class _Loader(paddle.io.DataLoader):
    """A DataLoader that remembers its live iterator, so that a run ending in an error can stop the worker processes
    at once (otherwise they live as long as the exception's traceback, and can hold up interpreter exit)."""

    def __iter__(self):
        self._live = super().__iter__()
        return self._live

    def reads_in(self, thread) -> bool:
        """Whether ``thread`` is the one the live iterator reads batches in."""
        live = getattr(self, "_live", None)
        return live is not None and thread is not None and loader_thread(live) is thread

    def abort(self) -> None:
        """Stop the live iterator with an error: the step waiting on it raises instead of hanging."""
        if getattr(self, "_live", None) is not None:
            abort_loader_iterator(self._live)

    def shutdown(self) -> None:
        it, self._live = getattr(self, "_live", None), None
        if it is not None:
            shutdown_loader_iterator(it)


class _EpochTagged(paddle.io.BatchSampler):
    """Batches of ``(absolute epoch, index, draw)`` keys; ``draw`` numbers this process's draws in the epoch, unique
    over the processes, so the copies of an image that repeated augmentation deals out are augmented differently."""

    def __init__(self, inner: paddle.io.BatchSampler, rank: int = 0, world_size: int = 1):
        self.inner, self.epoch, self.rank, self.world = inner, 0, rank, world_size

    def __iter__(self):
        epoch = self.epoch
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

    def __init__(self, loader: _Loader, sampler, dataset, seed: int, sampler_seed: int,
                 mixup: Optional[Mixup] = None):
        self.loader, self.sampler, self.dataset, self.mixup = loader, sampler, dataset, mixup
        self.seed, self.sampler_seed, self.epoch = seed, sampler_seed, 0

    def set_epoch(self, epoch: int) -> None:
        """The next iteration is absolute epoch ``epoch`` (1-based): its shuffle, its samples' augmentation and its
        Mixup/CutMix draws follow from (seed, epoch) alone."""
        self.epoch = epoch - 1
        self.sampler.set_epoch(self.sampler_seed + self.epoch)  # the sampler seeds its shuffle with the epoch
        self.loader.batch_sampler.epoch = self.epoch

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        epoch = self.epoch
        unreadable = set()
        for step, (x, y, skipped) in enumerate(self.loader):
            unreadable.update(int(v) for v in skipped.numpy().reshape(-1) if v >= 0)
            if self.mixup is not None:
                rng = np.random.RandomState(sample_seed(self.seed, epoch, step, _MIX_STREAM) % 2**32)
                x, y = self.mixup(x, y, rng)
            yield [x, y]
        if unreadable:
            names = [self.dataset.item_name(i) for i in sorted(unreadable)]
            log.warning(f"epoch {epoch + 1}: {len(names)} unreadable image(s) replaced by others of their class: "
                        + ", ".join(names[:20]) + (" ..." if len(names) > 20 else ""))

    def shutdown(self) -> None:
        self.loader.shutdown()


def build_loaders(cfg: Dict[str, Any], train_ds, eval_ds, num_classes: int, rank: int = 0, world_size: int = 1):
    """(training batches, eval loader) of a run; ``TrainBatches.set_epoch`` before each epoch."""
    d, seed = cfg["Data"], cfg["Global"]["seed"]
    shuffle = d["Train"]["shuffle"] is not False
    if d["Train"]["sampler"] == "repeated":
        sampler: Any = RepeatedAugSampler(train_ds, d["Train"]["batch_size"], d["Train"]["repeats"], shuffle=shuffle)
    else:
        sampler = paddle.io.DistributedBatchSampler(train_ds, d["Train"]["batch_size"], shuffle=shuffle,
                                                    drop_last=True)
    train_ds.seed = seed
    train_loader = _Loader(train_ds, batch_sampler=_EpochTagged(sampler, rank, world_size),
                           num_workers=d["num_workers"])
    train = TrainBatches(train_loader, sampler, train_ds, seed + rank, seed * 10007,
                         Mixup.from_config(cfg, num_classes))
    eval_sampler = paddle.io.DistributedBatchSampler(eval_ds, d["Eval"]["batch_size"], shuffle=False)
    eval_loader = _Loader(eval_ds, batch_sampler=eval_sampler, num_workers=d["num_workers"])
    return train, eval_loader
