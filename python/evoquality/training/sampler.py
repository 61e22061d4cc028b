"""Pair-aware batches for stage 2: both images of every labelled pair land in the same generation batch.

TRL's `RepeatSampler` draws prompts independently, so an image's partner is usually in another step and the
fidelity reward (METHOD.md Eq. 3, a mean over the partners *present in the step*) would have nothing to compare to.
This sampler packs whole, disjoint pairs into each batch of unique images and then reproduces RepeatSampler's
layout exactly, which the rest of GRPOTrainer relies on:

    for each batch of U unique images (U/2 disjoint pairs):
        repeat `repeat_count` times:              # TRL reuses one generation batch over steps_per_generation steps
            for image in batch: yield image G times consecutively   # G = num_generations: a group is contiguous

Every process builds the same sequence from the same seed; accelerate hands each process a contiguous slice, so
the *global* generation batch is always U whole groups of whole pairs.
"""

from __future__ import annotations

from typing import Iterator, Optional

import numpy as np
from torch.utils.data import Sampler


def pack_pairs(pairs: np.ndarray, images_per_batch: int, order: Optional[np.ndarray] = None) -> list[list[int]]:
    """Pack labelled pairs into batches of exactly `images_per_batch` distinct images, made of disjoint pairs.

    pairs: (M, 2) int image indices; order: (M,) permutation of the pairs to consume (default: as given).
    Returns a list of batches, each a list of `images_per_batch` image indices in pair order (i0, j0, i1, j1, ...).
    A pair that shares an image with the batch being filled waits for the next batch; pairs left over at the end
    (fewer than a full batch) are not used this epoch (drop_last, as TRL does).
    """
    pairs = np.asarray(pairs, dtype=np.int64)
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ValueError(f"pairs must have shape (M, 2), got {pairs.shape}")
    if images_per_batch < 2 or images_per_batch % 2:
        raise ValueError(f"images_per_batch must be an even number >= 2, got {images_per_batch}")
    if pairs.size and bool((pairs[:, 0] == pairs[:, 1]).any()):
        raise ValueError("pairs must not pair an image with itself")
    order = np.arange(len(pairs)) if order is None else np.asarray(order)
    pending: list[int] = []  # pairs deferred because they overlapped the batch being filled
    batches: list[list[int]] = []
    batch: list[int] = []
    used: set[int] = set()

    def try_add(k: int) -> bool:
        a, b = int(pairs[k, 0]), int(pairs[k, 1])
        if a in used or b in used:
            return False
        batch.extend((a, b))
        used.update((a, b))
        return True

    def close_if_full() -> None:
        nonlocal batch, used, pending
        if len(batch) == images_per_batch:
            batches.append(batch)
            batch, used = [], set()
            # Deferred pairs get the first chance at the new batch (they are the oldest).
            waiting, pending = pending, []
            for k in waiting:
                if len(batch) < images_per_batch and try_add(k):
                    close_if_full()
                else:
                    pending.append(k)

    for k in order:
        if try_add(int(k)):
            close_if_full()
        else:
            pending.append(int(k))
    return batches


class PairAwareSampler(Sampler[int]):
    """Dataset row indices (one row per unique image) in TRL's RepeatSampler layout, whole pairs per batch.

    Args:
        pairs: (M, 2) row indices of the labelled pairs.
        images_per_batch: U, unique images per global generation batch (even).
        num_generations: G, consecutive repeats of each image (its rollout group).
        repeat_count: how often each batch is replayed (TRL: num_iterations * steps_per_generation).
        shuffle: draw a new pair order every pass; seed: same seed on every process (required).
    """

    def __init__(
        self,
        pairs: np.ndarray,
        *,
        images_per_batch: int,
        num_generations: int,
        repeat_count: int = 1,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        self.pairs = np.asarray(pairs, dtype=np.int64)
        if self.pairs.ndim != 2 or self.pairs.shape[1] != 2 or len(self.pairs) == 0:
            raise ValueError(f"pairs must have shape (M, 2) with M >= 1, got {self.pairs.shape}")
        if num_generations < 1:
            raise ValueError(f"num_generations must be >= 1, got {num_generations}")
        if repeat_count < 1:
            raise ValueError(f"repeat_count must be >= 1, got {repeat_count}")
        self.images_per_batch = images_per_batch
        self.num_generations = num_generations
        self.repeat_count = repeat_count
        self.shuffle = shuffle
        # Like RepeatSampler: one generator seeded once, so every pass draws a new order, identically everywhere.
        self.rng = np.random.default_rng(seed)
        self._reference = pack_pairs(self.pairs, images_per_batch)
        self._num_batches = len(self._reference)
        if self._num_batches == 0:
            raise ValueError(
                f"{len(self.pairs)} labelled pairs cannot fill one batch of images_per_batch={images_per_batch} "
                "distinct images; label more pairs or lower images_per_step"
            )

    def batches(self) -> list[list[int]]:
        """The unique-image batches of the next pass (advances the generator)."""
        order = self.rng.permutation(len(self.pairs)) if self.shuffle else None
        return pack_pairs(self.pairs, self.images_per_batch, order)

    def __iter__(self) -> Iterator[int]:
        # The pass length must equal __len__ (the Trainer sizes epochs by it): a shuffled order can pack fewer or
        # more batches than the reference (unshuffled) packing, so cut, or top up from the reference packing.
        batches = self.batches()
        if len(batches) < self._num_batches:
            batches = batches + self._reference[: self._num_batches - len(batches)]
        for batch in batches[: self._num_batches]:
            for _ in range(self.repeat_count):
                for index in batch:
                    for _ in range(self.num_generations):
                        yield index

    def __len__(self) -> int:
        return self._num_batches * self.images_per_batch * self.num_generations * self.repeat_count
