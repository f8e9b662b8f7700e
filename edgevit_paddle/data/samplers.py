"""Repeated augmentation (``Data.Train.sampler: repeated``): DeiT's ``RASampler``, which the EdgeViT authors train
with. Each epoch draws a seeded permutation, repeats every index ``repeats`` times (3 in DeiT) and deals the list out
over the processes, so that the copies of one image land in different processes' batches (one process: in the same
batch) and are augmented differently; an epoch is ``len(dataset) // 256 * 256`` draws in all (the whole set when it
is smaller than 256), as in DeiT. Works under ``paddle.distributed.launch`` (rank and process count from
``ParallelEnv``, as ``DistributedBatchSampler`` takes them).
"""
from __future__ import annotations

import math
from typing import Iterator, List, Optional

import numpy as np
import paddle


class RepeatedAugSampler(paddle.io.BatchSampler):
    def __init__(self, dataset, batch_size: int, repeats: int = 3, num_replicas: Optional[int] = None,
                 rank: Optional[int] = None, shuffle: bool = True, drop_last: bool = True):
        env = paddle.distributed.ParallelEnv()
        self.dataset, self.batch_size, self.repeats = dataset, int(batch_size), int(repeats)
        self.nranks = num_replicas if num_replicas is not None else env.nranks
        self.local_rank = rank if rank is not None else env.local_rank
        self.shuffle, self.drop_last, self.epoch = shuffle, drop_last, 0
        n = len(dataset)
        self.num_samples = int(math.ceil(n * self.repeats / self.nranks))
        self.total_size = self.num_samples * self.nranks
        self.num_selected = (n // 256 * 256 if n >= 256 else n) // self.nranks

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> List[int]:
        """This process's draws for the current epoch (then the epoch advances, as ``DistributedBatchSampler``)."""
        n = len(self.dataset)
        order = np.random.RandomState(self.epoch % 2**32).permutation(n) if self.shuffle else np.arange(n)
        self.epoch += 1
        rep = np.repeat(order, self.repeats).tolist()
        rep += rep[: self.total_size - len(rep)]
        return rep[self.local_rank:self.total_size:self.nranks][: self.num_selected]

    def __iter__(self) -> Iterator[List[int]]:
        idx = self.indices()
        for i in range(0, len(idx), self.batch_size):
            batch = idx[i:i + self.batch_size]
            if len(batch) == self.batch_size or not self.drop_last:
                yield batch

    def __len__(self) -> int:
        full = self.num_selected // self.batch_size
        return full if self.drop_last or self.num_selected % self.batch_size == 0 else full + 1
