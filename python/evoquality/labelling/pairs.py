"""Pair sampling over an unlabelled image pool (docs/method.md, "Stage 1", step 1).

Pairs are drawn uniformly among the n·(n-1)/2 distinct unordered pairs, without replacement, then each pair's
canonical order (which image is ``image_i``, the one p* refers to) is drawn by a fair coin: the pool's listing order
must not leak into the labels. Everything is a pure function of the seed, so a resumed or sharded run draws the same
pairs.

Round 2 adds *same-content* pairs: an image and its synthetic variants form a group, and pairs are also drawn inside
groups (docs/method.md, "Rounds"). `sample_pairs` takes those groups as lists of pool indices.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def n_distinct_pairs(n: int) -> int:
    """Number of unordered pairs of `n` distinct items."""
    return n * (n - 1) // 2


def decode_pair_index(k: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-major rank ``k`` of the upper triangle of an (n, n) matrix -> (a, b) with a < b.

    k: (M,) int64 in [0, n(n-1)/2). Rank order: (0,1), (0,2), ..., (0,n-1), (1,2), ...
    The float square root is only a first guess; the integer fix-ups make the result exact for any n < 2**31.
    """
    k = np.asarray(k, dtype=np.int64)
    total = n_distinct_pairs(n)
    if k.size and (k.min() < 0 or k.max() >= total):
        raise ValueError(f"pair ranks must lie in [0, {total}), got [{k.min()}, {k.max()}]")
    # Number of ranks before row a: start(a) = a*(2n - a - 1)/2.
    def start(a: np.ndarray) -> np.ndarray:
        return a * (2 * n - a - 1) // 2

    disc = (2 * n - 1) ** 2 - 8 * k.astype(np.float64)
    a = np.floor(((2 * n - 1) - np.sqrt(np.maximum(disc, 0.0))) / 2).astype(np.int64)
    a = np.clip(a, 0, max(n - 2, 0))
    # Float rounding can put a one row off either way: step until start(a) <= k < start(a + 1).
    for _ in range(4):
        a = np.where(start(a) > k, a - 1, a)
        a = np.where(start(a + 1) <= k, a + 1, a)
    b = k - start(a) + a + 1
    return a, b


def _draw_within(n: int, n_pairs: int, rng: np.random.Generator, what: str) -> tuple[np.ndarray, np.ndarray]:
    total = n_distinct_pairs(n)
    if n_pairs > total:
        raise ValueError(f"{what}: asked for {n_pairs} pairs but {n} images have only {total} distinct pairs")
    if n_pairs == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    ranks = rng.choice(total, size=n_pairs, replace=False)
    return decode_pair_index(ranks, n)


def sample_pairs(
    n_images: int,
    n_pairs: int,
    seed: int,
    *,
    groups: Optional[Sequence[Sequence[int]]] = None,
    n_same_content: int = 0,
    variant_groups: Optional[Sequence[Sequence[int]]] = None,
    n_variant: int = 0,
) -> list[tuple[int, int]]:
    """Draw `n_pairs` distinct cross pairs among `n_images`, `n_same_content` pairs inside `groups` and `n_variant`
    pairs inside `variant_groups` (each image with its own synthetic variants).

    Returns a list of (i, j) pool indices, i != j, no unordered pair twice, canonical order randomised. The cross
    pairs come first, then the same-content pairs; a same-content pair that the cross draw already produced is not
    repeated (so the result may hold slightly fewer than n_pairs + n_same_content pairs when groups are dense).

    groups: lists of pool indices showing the same content (an image and its variants); same-content pairs are
    spread over groups in proportion to each group's number of distinct pairs.
    """
    if not isinstance(n_images, (int, np.integer)) or n_images < 0:
        raise ValueError(f"n_images must be a non-negative int, got {n_images!r}")
    if not isinstance(n_pairs, (int, np.integer)) or n_pairs < 0:
        raise ValueError(f"pairs must be a non-negative int, got {n_pairs!r}")
    if n_same_content < 0:
        raise ValueError(f"same-content pairs must be >= 0, got {n_same_content}")
    if n_same_content and not groups:
        raise ValueError("same-content pairs requested but no groups (image + variants) were given")
    rng = np.random.Generator(np.random.PCG64(seed))
    a, b = _draw_within(n_images, n_pairs, rng, "pairs")
    pairs: list[tuple[int, int]] = list(zip(a.tolist(), b.tolist()))

    if n_same_content:
        pairs += _same_content_pairs(n_images, groups, n_same_content, rng)
    if n_variant:
        if not variant_groups:
            raise ValueError("variant pairs requested but the pool has no variants")
        pairs += _same_content_pairs(n_images, variant_groups, n_variant, rng)

    # Dedup before the orientation coin so that (i, j) and (j, i) count as the same pair.
    seen: set[tuple[int, int]] = set()
    unique: list[tuple[int, int]] = []
    for p in pairs:
        key = (min(p), max(p))
        if key not in seen:
            seen.add(key)
            unique.append(key)
    flip = rng.random(len(unique)) < 0.5
    return [(j, i) if f else (i, j) for (i, j), f in zip(unique, flip.tolist())]


def _same_content_pairs(
    n_images: int, groups: Sequence[Sequence[int]], n_pairs: int, rng: np.random.Generator
) -> list[tuple[int, int]]:
    members = [sorted(set(int(x) for x in g)) for g in groups]
    for gi, g in enumerate(members):
        if g and (g[0] < 0 or g[-1] >= n_images):
            raise ValueError(f"groups[{gi}] holds an index outside the pool of {n_images} images")
    sizes = np.array([n_distinct_pairs(len(g)) for g in members], dtype=np.int64)
    total = int(sizes.sum())
    if n_pairs > total:
        raise ValueError(f"same-content pairs: asked for {n_pairs} but the groups hold only {total} distinct pairs")
    # Drawing ranks over the concatenated per-group triangles is uniform over all same-content pairs.
    ranks = np.sort(rng.choice(total, size=n_pairs, replace=False))
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    out: list[tuple[int, int]] = []
    group_of = np.searchsorted(offsets, ranks, side="right") - 1
    for g in np.unique(group_of):
        local = ranks[group_of == g] - offsets[g]
        la, lb = decode_pair_index(local, len(members[g]))
        out += [(members[g][x], members[g][y]) for x, y in zip(la.tolist(), lb.tolist())]
    return out
