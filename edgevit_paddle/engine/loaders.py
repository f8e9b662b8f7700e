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

When loading fails, ``failures_explained`` turns what Paddle reports (a "Blocking queue is killed" or a SIGCHLD
``SystemError``) into the one line that names the cause: the dataset's ``DataError``, or the worker process that died.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, Optional

import numpy as np
import paddle

from ..data.mixup import Mixup
from ..data.samplers import RepeatedAugSampler
from ..data.seeding import sample_seed
from ..errors import DataError, TrainingError
from ..paddle_compat import abort_loader_iterator, loader_thread, loader_worker_death, shutdown_loader_iterator

log = logging.getLogger("edgevit_paddle")

#: tells the seed of a step's Mixup/CutMix draws apart from the samples' seeds
_MIX_STREAM = 0x6D6978


class _Loader(paddle.io.DataLoader):
    """A DataLoader that remembers its live iterator, so that a run ending in an error can stop the worker processes
    at once (otherwise they live as long as the exception's traceback, and can hold up interpreter exit)."""

    def __iter__(self):
        self._live = super().__iter__()
        if loader_thread(self._live) in self._failed_readers():  # it failed before the line above: stop it now
            self.abort()
        return self._live

    def _failed_readers(self) -> set:
        if not hasattr(self, "_failed"):
            self._failed = set()
        return self._failed

    def reader_failed(self, thread) -> None:
        """``thread`` died of an exception: when it is this loader's reading thread, stop the live iterator (the step
        waiting on its queue would wait forever). The thread is remembered first, and ``__iter__`` looks after it
        has the iterator, so a thread that fails before ``__iter__`` returns (under load, the first batch of an
        unreadable dataset) is met by one or the other, never by neither."""
        self._failed_readers().add(thread)
        if self.reads_in(thread):
            self.abort()

    def reads_in(self, thread) -> bool:
        """Whether ``thread`` is the one the live iterator reads batches in."""
        live = getattr(self, "_live", None)
        return live is not None and thread is not None and loader_thread(live) is thread

    def abort(self) -> None:
        """Stop the live iterator with an error: the step waiting on it raises instead of hanging."""
        if getattr(self, "_live", None) is not None:
            abort_loader_iterator(self._live)

    def shutdown(self) -> None:
        """Stop the worker processes now. A worker found dead meanwhile is not reported again: Paddle's SIGCHLD
        handler raises its ``SystemError`` wherever the main thread is, here too, and the run already says why it
        ends (it would come out as a second, chained traceback)."""
        it, self._live = getattr(self, "_live", None), None
        if it is not None:
            try:
                shutdown_loader_iterator(it)
            except SystemError as e:
                if loader_worker_death(e) is None:
                    raise


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


@dataclass
class RunLoaders:
    """A run's two loaders: ``train`` (``TrainBatches.set_epoch`` before each epoch) and ``eval``."""

    train: TrainBatches
    eval: _Loader

    def readers(self):
        return [self.train.loader, self.eval]

    def shutdown(self) -> None:
        for loader in self.readers():
            loader.shutdown()


def build_loaders(cfg: Dict[str, Any], train_ds, eval_ds, num_classes: int, rank: int = 0,
                  world_size: int = 1) -> RunLoaders:
    """The training batches and the eval loader of a run."""
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
    return RunLoaders(train, eval_loader)


@contextlib.contextmanager
def failures_explained(loaders: RunLoaders, resume_hint: Callable[[], str]) -> Iterator[None]:
    """Run the block with ``loaders``' failures explained; the loaders are shut down at its end, however it ends.

    - a reading thread that fails on a ``DataError`` (an unreadable dataset) ends the block with that error, not the
      step's "Blocking queue is killed" after the thread's traceback; its loader is stopped at once (Paddle leaves the
      step waiting forever on a dead thread's queue, deaf to Ctrl-C);
    - a worker process that dies (the kernel's out-of-memory killer) ends it with one ``TrainingError`` naming the
      worker, with ``resume_hint()`` (how to continue) after it.
    """
    errors: list = []
    previous = threading.excepthook
    threading.excepthook = _catch_data_errors(errors, previous, loaders.readers())
    deaths = _WorkerDeaths()
    logging.getLogger().addFilter(deaths)
    try:
        yield
    except Exception as e:
        cause = errors.pop() if errors and isinstance(e, SystemError) else e
        if isinstance(cause, DataError):
            raise cause from None
        death = loader_worker_death(cause) or (deaths.seen[-1] if deaths.seen and isinstance(e, SystemError) else None)
        if death is not None:
            raise TrainingError(f"a data-loading worker process ({death}) stopped the run (out of memory? lower "
                                f"Data.num_workers or the batch size); {resume_hint()}") from None
        raise
    finally:
        threading.excepthook = previous
        logging.getLogger().removeFilter(deaths)
        loaders.shutdown()


class _WorkerDeaths(logging.Filter):
    """Keeps (and keeps off the screen) the warning Paddle's reading thread logs when a worker process has died; the
    training step then fails with "Blocking queue is killed", and the run ends with one line naming the worker."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def filter(self, record: logging.LogRecord) -> bool:
        death = loader_worker_death(record.getMessage())
        if death is None:
            return True
        self.seen.append(death)
        return False


def _catch_data_errors(store: list, previous, loaders):
    """A ``threading.excepthook``: a data error is kept as one ``DataError`` (the worker's traceback reduced to its
    last line) instead of printing the traceback, anything else keeps its traceback; and when the thread is the
    reading thread of one of ``loaders``, that loader is stopped with an error (``_Loader.reader_failed``)."""
    def hook(args):
        if isinstance(args.exc_value, DataError):
            last = str(args.exc_value).strip().splitlines()[-1]
            store.append(DataError(last.split("DataError: ", 1)[-1]))
        else:
            previous(args)
        for loader in loaders:
            loader.reader_failed(args.thread)
    return hook
