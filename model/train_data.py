"""The training data stream: endless, shuffled per epoch, sharded per process, resumable.

Every sample's augmentation is seeded by ``(seed, epoch, index)`` alone, and the shuffled order
of each epoch by ``(seed, epoch)``, so the stream that a resumed run sees after step ``n`` is
exactly the one an uninterrupted run would have seen, whatever the number of loader workers.
"""
# ruff: noqa: TID253

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from fornet.calibration.cityscapes import CityscapesDataset
from fornet.calibration.preprocess import preprocess
from fornet.calibration.transforms import TrainAugment

#: A stream position: ``(epoch, index into the data set)``.
StreamKey = tuple[int, int]


class EpochStream(Sampler[StreamKey]):
    """Endless ``(epoch, index)`` keys for one process, starting after ``start`` keys.

    Each epoch is a :class:`torch.utils.data.DistributedSampler` pass (shuffled with
    ``seed + epoch``, padded to a multiple of ``world_size``, every ``world_size``-th index for
    this ``rank``), so the processes of one job see disjoint samples.
    """

    def __init__(self, size: int, rank: int = 0, world_size: int = 1, seed: int = 0, start: int = 0) -> None:
        # DistributedSampler only needs len() of its data set.
        self.sampler: DistributedSampler[int] = DistributedSampler(
            range(size), num_replicas=world_size, rank=rank, shuffle=True, seed=seed,  # type: ignore[arg-type]
            drop_last=False)
        self.per_epoch = len(self.sampler)
        self.start = start

    def __iter__(self) -> Iterator[StreamKey]:
        epoch, offset = divmod(self.start, self.per_epoch)
        while True:
            self.sampler.set_epoch(epoch)
            for index in list(self.sampler)[offset:]:
                yield epoch, index
            epoch, offset = epoch + 1, 0


class AugmentedTrainSet(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Augmented, normalised training samples addressed by ``(epoch, index)``.

    An item is ``(image float32 3xHxW, label uint8 HxW)``: :class:`TrainAugment` (random scale,
    crop with padding, flip) seeded by ``(seed, epoch, index)``, then the shared
    :func:`~fornet.calibration.preprocess.preprocess` normalisation.
    """

    def __init__(self, data: CityscapesDataset, crop: tuple[int, int], scale: tuple[float, float],
                 seed: int, mean: Sequence[float], std: Sequence[float]) -> None:
        self.data = data
        self.augment = TrainAugment(crop=crop, scale=scale, flip=True, seed=seed)
        self.seed = seed
        self.mean = tuple(mean)
        self.std = tuple(std)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: StreamKey) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        epoch, index = key
        sample = self.data[index]
        self.augment.reseed(int(np.random.SeedSequence([self.seed, epoch, index]).generate_state(1)[0]))
        image, label = self.augment(sample.image, sample.label)
        x = preprocess(image, None, self.mean, self.std)
        return torch.from_numpy(x), torch.from_numpy(np.ascontiguousarray(label, dtype=np.uint8))


def default_workers(device: torch.device, local_world_size: int = 1) -> int:
    """Loader workers per process: none on small CPUs (they would steal the model's cores),
    two on larger ones, up to eight per GPU process."""
    cores = (os.cpu_count() or 1) // max(1, local_world_size)
    if device.type == "cpu":
        return 0 if cores <= 2 else 2
    return max(1, min(8, cores - 1))


def train_batches(dataset: AugmentedTrainSet, batch: int, rank: int, world_size: int, seed: int,
                  start_step: int, workers: int, pin_memory: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless batches of this process's share, starting after ``start_step`` steps."""
    stream = EpochStream(len(dataset), rank, world_size, seed, start=start_step * batch)
    loader = DataLoader(dataset, batch_size=batch, sampler=stream, num_workers=workers,
                        pin_memory=pin_memory, persistent_workers=workers > 0,
                        prefetch_factor=2 if workers > 0 else None)
    return iter(loader)
