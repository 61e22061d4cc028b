"""The toy world of the embedded default: small crops of the bundled photos, graded blur and noise. The warm-up that
gives the toy base model its weak prior uses photos of its own; the unlabelled evolution pool and the held-out
benchmark share another set of photos, split in two: every pool crop lies in one half of its photo and every
held-out crop in the other, so no pixel of a held-out image was ever in the pool.

Why shared photos: the held-out benchmark is the in-domain test split, as KonIQ-10k's test images are for a model
evolved on KonIQ-10k's training images — the same kind of content, never the same images. With disjoint photos
(three for the pool, three others held out) the tiny toy model's gains barely transfer at all, even under
supervised training on the pool's truth, so that benchmark measured cross-content transfer, not the method
(docs/toy.md, "Why the pool and the held-out set share photos").

A "content" is one 112 x 112 crop of a photo; its variants are the crop under each (type, level). Within one
(content, type) the level order is the quality order (docs/datasets.md, the synthetic benchmark). Levels are ground truth
for the warm-up labels and for *reporting*; the evolution pool is written without them (see `datasets.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from evoquality.data.synthetic import make_variants

CROP = 112  # px: 8 x 8 patches of 14 px = 16 visual tokens after the 2 x 2 merge (TINY_MAX_PIXELS)
TYPES = ("gaussian_blur", "white_noise")
LEVELS = (1, 2, 3, 4, 5)

# Photo sets (scikit-image, bundled; no download), natural scenes and textures. The warm-up's photos are disjoint
# from the evolution's; the pool and the held-out set take opposite halves of the evolution photos.
WARMUP_PHOTOS = ("astronaut", "coffee", "camera", "brick")
EVOLUTION_PHOTOS = ("chelsea", "rocket", "grass", "hubble_deep_field", "coins", "gravel")
POOL_HALF, HELDOUT_HALF = 0, 1


@dataclass(frozen=True)
class ToyImage:
    content: str      # "<photo>#<crop index>"
    dist_type: str
    level: int        # 1 (mildest) .. 5; quality decreases with level within (content, type)
    image: Image.Image

    @property
    def group(self) -> str:
        return f"{self.content}/{self.dist_type}"


def quality(level: int) -> float:
    """The toy MOS on the 1-5 scale: level 1 -> 4.6 ... level 5 -> 1.4 (used by the warm-up and the report only)."""
    return 4.6 - 0.8 * (level - 1)


def photo(name: str) -> np.ndarray:
    import skimage.data

    arr = getattr(skimage.data, name)()
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    arr = np.ascontiguousarray(arr[..., :3])
    # Scale so the short side is 2.25 crops: crops then show whole objects and textures rather than flat areas.
    h, w = arr.shape[:2]
    s = 2.25 * CROP / min(h, w)
    return np.asarray(Image.fromarray(arr).resize((max(CROP, round(w * s)), max(CROP, round(h * s))),
                                                  Image.Resampling.LANCZOS))


def half(arr: np.ndarray, which: int) -> np.ndarray:
    """One half of a photo, split across its longer side: 0 the left (or top) half, 1 the right (or bottom) one."""
    h, w = arr.shape[:2]
    if w >= h:
        return arr[:, : w // 2] if which == 0 else arr[:, w // 2:]
    return arr[: h // 2] if which == 0 else arr[h // 2:]


def crops(photos: Sequence[str], per_photo: int, seed: int, *, which_half: Optional[int] = None
          ) -> list[tuple[str, np.ndarray]]:
    """`per_photo` random CROP x CROP crops of each photo (of its half `which_half`, or anywhere when None):
    [(content id, uint8 array)], deterministic for seed."""
    out = []
    for p_idx, name in enumerate(photos):
        arr = photo(name)
        if which_half is not None:
            arr = half(arr, which_half)
        rng = np.random.default_rng([seed, p_idx, 0x70A])
        h, w = arr.shape[:2]
        if h < CROP or w < CROP:
            raise ValueError(f"photo {name!r}: a {CROP}-px crop does not fit in {w}x{h}")
        for c in range(per_photo):
            y, x = int(rng.integers(0, h - CROP + 1)), int(rng.integers(0, w - CROP + 1))
            out.append((f"{name}#{c}", arr[y:y + CROP, x:x + CROP].copy()))
    return out


def variants(photos: Sequence[str], per_photo: int, seed: int, types: Sequence[str] = TYPES, *,
             which_half: Optional[int] = None) -> list[ToyImage]:
    """Every crop under every (type, level). A variant identical to a milder level is dropped (it carries no
    quality difference), so a (content, type) may hold fewer than 5 images."""
    out = []
    for content, arr in crops(photos, per_photo, seed, which_half=which_half):
        for v in make_variants(arr, types=types, levels=LEVELS, seed=seed, reference_key=content):
            out.append(ToyImage(content, v.dist_type, v.level, v.image))
    return out
