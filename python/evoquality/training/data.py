"""Stage-2 data: labelled pairs from stage 1, the dataset TRL iterates, and the image store.

One dataset row per unique image (the scoring prompt; the sampler repeats it G times) and, with `compare`, one row
per labelled pair after them (the comparison prompt, the pair shown in an order fixed per pair by a seeded coin).
Rows carry image paths: TRL 1.16 passes a row's `images` through untouched to the processor (inside the prompt's
content blocks, which it deep-copies: a path costs nothing to copy), and the processor's cache
(`io.preprocess_cache`) decodes and preprocesses each path once per step. Only vLLM generation needs decoded images
in the rows (TRL hands them to vLLM as they are); then `ImageStore` attaches them, decoding each image once while it
is in use (an LRU keyed by path), stamped with its path so that same cache recognises it.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional, Union

import numpy as np
from PIL import Image

from evoquality.io.preprocess_cache import IMAGE_ID_KEY
from evoquality.prompts import compare_messages, score_messages


def load_image(ref: str):
    """Decode one image for vLLM's stage 2: the single seam to the image pipeline (stage 1's loader, same checks)."""
    from evoquality.io.load import load_image as _load

    return _load(ref)


@dataclass
class LabelledPairs:
    """Pseudo-labelled pairs over a list of unique images.

    images: (N,) image refs (paths); pairs: (M, 2) int64 indices into `images`; p_star: (M,) float32, P(first
    image of the pair is better); skipped: reason -> count of label records not used.
    """

    images: list[str]
    pairs: np.ndarray
    p_star: np.ndarray
    skipped: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if self.pairs.shape != (len(self.p_star), 2):
            raise ValueError(f"pairs must have shape ({len(self.p_star)}, 2), got {self.pairs.shape}")
        # image -> [(partner, P(image better than partner))], both directions (p*_ji = 1 - p*_ij).
        self.neighbors: dict[str, list[tuple[str, float]]] = {ref: [] for ref in self.images}
        for (a, b), p in zip(self.pairs.tolist(), self.p_star.tolist()):
            self.neighbors[self.images[a]].append((self.images[b], p))
            self.neighbors[self.images[b]].append((self.images[a], 1.0 - p))

    def __len__(self) -> int:
        return len(self.p_star)

    def pairs_among(self, refs: list[str]) -> tuple[list[tuple[int, int]], list[float]]:
        """Every labelled pair with both images in `refs`, as positions in `refs` (each pair once) and p*."""
        where = {ref: k for k, ref in enumerate(refs)}
        if len(where) != len(refs):
            raise ValueError("refs must not repeat an image (each image is one rollout group)")
        pairs, labels = [], []
        for k, ref in enumerate(refs):
            for other, p in self.neighbors.get(ref, ()):
                m = where.get(other)
                if m is not None and k < m:
                    pairs.append((k, m))
                    labels.append(p)
        return pairs, labels


def pairs_from_records(
    records: Iterable[Mapping], *, base_dir: Optional[Union[str, Path]] = None, use_flagged: bool = False
) -> LabelledPairs:
    """Labelled pairs from stage-1 records {"image_i", "image_j", "p_star", "votes_i", "votes_j", "invalid",
    "flagged"}. A record is skipped (and counted by reason) when its label is missing or outside [0, 1], it pairs
    an image with itself, it repeats a pair already seen, or it is flagged (unless `use_flagged`); missing image
    files are skipped too. Relative image paths resolve against `base_dir`."""
    images: list[str] = []
    index: dict[str, int] = {}
    pairs: list[tuple[int, int]] = []
    labels: list[float] = []
    seen: set[tuple[int, int]] = set()
    skipped: Counter = Counter()
    exists: dict[str, bool] = {}

    def ref_of(value) -> Optional[str]:
        if not isinstance(value, str) or not value:
            return None
        path = Path(value)
        if base_dir is not None and not path.is_absolute():
            path = Path(base_dir) / path
        return str(path)

    for rec in records:
        a, b = ref_of(rec.get("image_i")), ref_of(rec.get("image_j"))
        p = rec.get("p_star")
        if a is None or b is None:
            skipped["missing image_i/image_j"] += 1
            continue
        if a == b:
            skipped["image paired with itself"] += 1
            continue
        if not isinstance(p, (int, float)) or isinstance(p, bool) or not (0.0 <= float(p) <= 1.0):
            skipped["p_star missing or outside [0, 1]"] += 1
            continue
        if rec.get("flagged") and not use_flagged:
            skipped["flagged by stage 1"] += 1
            continue
        for ref in (a, b):
            if ref not in exists:
                exists[ref] = Path(ref).is_file()
        if not (exists[a] and exists[b]):
            skipped["image file missing"] += 1
            continue
        ia = index.setdefault(a, len(index))
        ib = index.setdefault(b, len(index))
        if ia == len(images):
            images.append(a)
        if ib == len(images):
            images.append(b)
        key = (min(ia, ib), max(ia, ib))
        if key in seen:
            skipped["duplicate pair"] += 1
            continue
        seen.add(key)
        pairs.append((ia, ib))
        labels.append(float(p))
    return LabelledPairs(
        images=images,
        pairs=np.asarray(pairs, dtype=np.int64).reshape(-1, 2),
        p_star=np.asarray(labels, dtype=np.float32),
        skipped=skipped,
    )


def read_label_records(path: Union[str, Path]) -> list[dict]:
    """Records of a finished stage-1 round: its directory or its labels.jsonl (read by stage 1's own reader)."""
    from evoquality.labelling import read_labels
    from evoquality.labelling.labels import LABELS_FILE

    path = Path(path)
    if path.is_file() and path.name == LABELS_FILE:
        path = path.parent
    if not path.is_dir():
        raise ValueError(f"labels: {str(path)!r} must be a stage-1 round directory or its {LABELS_FILE}")
    return list(read_labels(path))


class _SharedImage(Image.Image):
    """A decoded image of the store, which deep copies share instead of copying its pixels: TRL deep-copies the
    prompts, images included, in every generation batch (`GRPOTrainer._generate`), and the store never mutates an
    image. Defined on a class, so an image does not reference itself and is freed as soon as the store drops it."""

    def __deepcopy__(self, memo):
        return self


class ImageStore:
    """Decoded images by path, least-recently-used first out (vLLM generation only); every decode is timed and
    counted.

    `capacity` must cover one generation batch of unique images (else an image would be decoded twice per step).
    """

    def __init__(self, capacity: int, loader: Callable[[str], object] = load_image) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.loader = loader
        self._cache: OrderedDict[str, object] = OrderedDict()
        self.decodes = 0
        self.decode_seconds = 0.0

    def get(self, ref: str):
        image = self._cache.get(ref)
        if image is not None:
            self._cache.move_to_end(ref)
            return image
        start = time.perf_counter()
        try:
            image = self.loader(ref)
        except Exception as e:  # stage 1 decoded this image; failing now means the file changed under us
            raise ValueError(f"image {ref!r} could not be loaded for training: {e}") from e
        self.decode_seconds += time.perf_counter() - start
        self.decodes += 1
        image.info[IMAGE_ID_KEY] = ref
        image.__class__ = _SharedImage
        self._cache[ref] = image
        if len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        return image

    def take_seconds(self) -> float:
        """Decode time since the last call (the trainer books it under `preprocess`)."""
        seconds, self.decode_seconds = self.decode_seconds, 0.0
        return seconds


COMPARE_ID = "compare:{}"  # image_id of the comparison row of pair k (a rollout group needs a unique id)


def compare_orders(n_pairs: int, seed: int) -> np.ndarray:
    """(M,) bool: True where pair k is shown as (image_j, image_i) in its comparison prompt (a fair coin per pair,
    so the position of the better image carries no information)."""
    return np.random.default_rng([seed, 0xC0A7]).random(n_pairs) < 0.5


def build_dataset(pairs: LabelledPairs, store: Optional[ImageStore] = None, *, compare: bool = False, seed: int = 0):
    """A `datasets.Dataset` TRL iterates: rows {"image_id", "pair", "swapped", "prompt", "images"}.

    Rows 0..N-1: the scoring prompt of each image (pair = -1). With `compare`, rows N..N+M-1: the comparison prompt
    of pair k (pair = k; swapped: shown as (image_j, image_i)). Images are the paths, or with a `store` its decoded
    images (for vLLM), attached lazily (TRL requires a `datasets.Dataset`; `with_transform` keeps it one).
    """
    from datasets import Dataset

    n, m = len(pairs.images), len(pairs) if compare else 0
    swapped = compare_orders(m, seed).tolist()
    score_prompt, compare_prompt = score_messages(), compare_messages()

    image = (lambda ref: ref) if store is None else store.get

    def attach(batch: dict) -> dict:
        prompts, images = [], []
        for ref, k, swap in zip(batch["image_id"], batch["pair"], batch["swapped"]):
            if k < 0:
                prompts.append(score_prompt)
                images.append([image(ref)])
            else:
                i, j = (pairs.images[x] for x in pairs.pairs[k])
                prompts.append(compare_prompt)
                images.append([image(j), image(i)] if swap else [image(i), image(j)])
        return {**batch, "prompt": prompts, "images": images}

    columns = {
        "image_id": list(pairs.images) + [COMPARE_ID.format(k) for k in range(m)],
        "pair": [-1] * n + list(range(m)),
        "swapped": [False] * n + swapped,
    }
    return Dataset.from_dict(columns).with_transform(attach)

