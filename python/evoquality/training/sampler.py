"""Pair-aware batches for stage 2: both images of every labelled pair land in the same generation batch.

TRL's `RepeatSampler` draws prompts independently, so an image's partner is usually in another step and the
fidelity reward (paper Eq. 3 in docs/method.md, a mean over the partners *present in the step*) would have nothing to compare to.
This sampler packs whole, disjoint pairs into each batch of unique images and then reproduces RepeatSampler's
layout exactly, which the rest of GRPOTrainer relies on:

    for each batch of U unique images (U/2 disjoint pairs):
        repeat `repeat_count` times:              # TRL reuses one generation batch over steps_per_generation steps
            for image in batch: yield image G times consecutively   # G = num_generations: a group is contiguous
            [with compare rows: for pair in batch: yield its comparison row G times]

Every process builds the same sequence from the same seed; accelerate hands each process a contiguous slice, so
the *global* generation batch is always U whole groups of whole pairs. The pair order of a pass is a function of
(seed, epoch) alone (`set_epoch`, called by the Trainer), so a run resumed in a later epoch replays that epoch's
order, not epoch 0's.

A pair the packer cannot place in a pass (it overlaps every batch still open, or it is in the incomplete last
batch) is not trained on in that pass. Hub-shaped pair graphs lose many (an image in more pairs than there are
batches): every pass is counted in `passes` and a share above `DROPPED_PAIRS_WARN_SHARE` is logged as a warning.
"""

from __future__ import annotations

import logging
from typing import Iterator, Optional

import numpy as np
from torch.utils.data import Sampler

logger = logging.getLogger(__name__)

DROPPED_PAIRS_WARN_SHARE = 0.05  # warn when a pass leaves more than this share of the labelled pairs unused


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
        compare_rows: (M,) dataset row of each pair's comparison prompt, or None (scoring prompts only).

    `passes` records every pass so far: {"epoch", "pairs", "pairs_used", "pairs_dropped"}.
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
        compare_rows: Optional[np.ndarray] = None,
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
        self.seed = seed
        self.compare_rows = None
        if compare_rows is not None:
            self.compare_rows = np.asarray(compare_rows, dtype=np.int64)
            if self.compare_rows.shape != (len(self.pairs),):
                raise ValueError(f"compare_rows must have shape ({len(self.pairs)},), got {self.compare_rows.shape}")
            self._pair_index = {(int(a), int(b)): k for k, (a, b) in enumerate(self.pairs.tolist())}
        self.epoch = 0
        self.passes: list[dict] = []
        self._n_pairs = len({tuple(sorted(p)) for p in self.pairs.tolist()})  # distinct pairs a pass could use
        self._reference = pack_pairs(self.pairs, images_per_batch)
        self._num_batches = len(self._reference)
        if self._num_batches == 0:
            raise ValueError(
                f"{len(self.pairs)} labelled pairs cannot fill one batch of images_per_batch={images_per_batch} "
                "distinct images; label more pairs or lower images_per_step"
            )

    def set_epoch(self, epoch: int) -> None:
        """Select the pass to draw next (the Trainer calls this at every epoch start, resumed runs included)."""
        self.epoch = int(epoch)

    def batches(self, epoch: Optional[int] = None) -> list[list[int]]:
        """The unique-image batches of pass `epoch` (default: the current one), exactly as `__iter__` yields them.

        The pass length must equal __len__ (the Trainer sizes epochs by it): a shuffled order can pack fewer or
        more batches than the reference (unshuffled) packing, so cut, or top up from the reference packing.
        """
        epoch = self.epoch if epoch is None else epoch
        # A generator per (seed, epoch): the same order on every process and after any resume.
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.pairs)) if self.shuffle else None
        batches = pack_pairs(self.pairs, self.images_per_batch, order)
        if len(batches) < self._num_batches:
            batches = batches + self._reference[: self._num_batches - len(batches)]
        return batches[: self._num_batches]

    def _record_pass(self, batches: list[list[int]]) -> None:
        used = {tuple(sorted(b[k : k + 2])) for b in batches for k in range(0, len(b), 2)}
        n_pairs = self._n_pairs
        dropped = n_pairs - len(used)
        self.passes.append({"epoch": self.epoch, "pairs": n_pairs, "pairs_used": len(used),
                            "pairs_dropped": dropped})
        if dropped > DROPPED_PAIRS_WARN_SHARE * n_pairs:
            logger.warning(
                "pass %d trains on %d of %d labelled pairs: %d (%.0f%%) could not be packed into whole batches of "
                "%d distinct images (images shared by many pairs, or the incomplete last batch)",
                self.epoch, len(used), n_pairs, dropped, 100.0 * dropped / n_pairs, self.images_per_batch)

    def rows_per_batch(self) -> int:
        return self.images_per_batch + (self.images_per_batch // 2 if self.compare_rows is not None else 0)

    def _rows(self, batch: list[int]) -> list[int]:
        """Dataset rows of one generation batch: its images, then the comparison rows of its pairs."""
        if self.compare_rows is None:
            return batch
        pairs = [self._pair_index[(batch[k], batch[k + 1])] for k in range(0, len(batch), 2)]
        return batch + [int(self.compare_rows[p]) for p in pairs]

    def __iter__(self) -> Iterator[int]:
        batches = self.batches()
        self._record_pass(batches)
        self.epoch += 1  # without a set_epoch call, the next pass still draws a new order
        for batch in batches:
            rows = self._rows(batch)
            for _ in range(self.repeat_count):
                for index in rows:
                    for _ in range(self.num_generations):
                        yield index

    def __len__(self) -> int:
        return self._num_batches * self.rows_per_batch() * self.num_generations * self.repeat_count
