"""The synthetic benchmark: graded distortions of pristine photos, with the quality order known by construction.

Within one (reference, type) the level order is the quality order (docs/datasets.md); the evaluation L-, P- and D-tests
use it. **Levels are ground truth for evaluation only** — the labelling stage may use `make_variants` to create
same-content images, but never their levels as labels (docs/method.md, "Rounds").

Usage::

    manifest = build_synthetic_benchmark("bench/", references=None, types=("jpeg", "gaussian_blur"), seed=0,
                                         size=112)
    # bench/manifest.jsonl, bench/references/<ref>.png, bench/images/<ref>/<ref>__<type>__<level>.png
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image

from evoquality.data.distortions import DISTORTIONS, LEVELS, distortion
from evoquality.data.images import list_images
from evoquality.data.manifest import Header, Manifest, ManifestError, Record

# CC0 / public-domain photos bundled with scikit-image (they load with no download). clock (already motion-blurred)
# and the motorcycle pair (no licence stated) are excluded. Grey ones are replicated to RGB.
BUNDLED_REFERENCES = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "camera", "coins", "brick",
                      "grass", "gravel")
DEFAULT_TYPES = ("gaussian_blur", "jpeg", "white_noise", "jpeg2000", "color_quantization")
Size = Union[None, int, tuple[int, int]]


@dataclass(frozen=True)
class Variant:
    dist_type: str
    level: int
    image: Image.Image


def _rgb_array(image) -> np.ndarray:
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"image must have shape (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}")
    if min(arr.shape[:2]) < 8:
        raise ValueError(f"image must be at least 8x8 px, got {arr.shape[1]}x{arr.shape[0]}")
    return np.ascontiguousarray(arr[..., :3])


def _key(text_or_bytes) -> int:
    data = text_or_bytes.encode() if isinstance(text_or_bytes, str) else bytes(text_or_bytes)
    return zlib.crc32(data)


def _rng(seed: int, reference_key: int, dist_type: str) -> np.random.Generator:
    # Seeded by (seed, reference, type) but not the level: levels share one noise field (see distortions.py).
    return np.random.default_rng([int(seed), reference_key, _key(dist_type)])


def _check_levels(levels: Sequence[int]) -> tuple[int, ...]:
    levels = tuple(levels)
    bad = [lv for lv in levels if lv not in LEVELS]
    if bad or not levels:
        raise ValueError(f"levels must be a non-empty subset of {LEVELS}, got {levels}")
    return levels


def make_variants(image, types: Optional[Sequence[str]] = None, levels: Sequence[int] = LEVELS, seed: int = 0,
                  reference_key: Optional[str] = None, drop_identical: bool = True) -> list[Variant]:
    """Distorted versions of `image` (PIL image or uint8 array (H, W[, 3])): one per (type, level), types outer.

    Deterministic for (seed, reference, type, level): the reference is `reference_key` when given (a stable name),
    else a hash of the pixels. types: names in `DISTORTIONS` (default: all of them).
    drop_identical: leave out a variant whose pixels equal the input or a milder level of the same type (a
    chroma-only distortion of a grey photo, a codec at its size floor, a sigma-0.1 blur that rounds back): such an
    image carries no quality difference, so it can be neither a distorted image nor one side of a pair. The result
    may therefore be shorter than len(types) * len(levels).
    """
    arr = _rgb_array(image)
    types = tuple(types) if types is not None else tuple(DISTORTIONS)
    specs = [distortion(t) for t in types]
    levels = _check_levels(levels)
    ref_key = _key(reference_key) if reference_key is not None else _key(arr.tobytes() + bytes(str(arr.shape), "ascii"))
    out = []
    for spec in specs:
        seen = [arr]
        for level in sorted(levels):
            result = spec.fn(arr, spec.params[level - 1], _rng(seed, ref_key, spec.name))
            if drop_identical and any(np.array_equal(result, s) for s in seen):
                continue
            seen.append(result)
            out.append(Variant(spec.name, level, Image.fromarray(result)))
    return out


def fit_size(image: Image.Image, size: Size) -> Image.Image:
    """Centre-crop to the target aspect ratio and resize (Lanczos). size: None (unchanged), an int (square), or
    (width, height)."""
    if size is None:
        return image
    w_out, h_out = (size, size) if isinstance(size, int) else size
    if w_out < 8 or h_out < 8:
        raise ValueError(f"size must be at least 8 px per side, got {size}")
    w, h = image.size
    scale = min(w / w_out, h / h_out)
    cw, ch = round(w_out * scale), round(h_out * scale)
    left, top = (w - cw) // 2, (h - ch) // 2
    return image.crop((left, top, left + cw, top + ch)).resize((w_out, h_out), Image.Resampling.LANCZOS)


def bundled_references(names: Sequence[str] = BUNDLED_REFERENCES[:8]) -> list[tuple[str, Image.Image]]:
    """The scikit-image photos as (name, RGB image); needs scikit-image (the `test` extra), no download."""
    try:
        import skimage.data
    except ImportError:
        raise ImportError("the bundled reference photos come from scikit-image: `pip install scikit-image`, "
                          "or pass references= a folder of your own images") from None
    out = []
    for name in names:
        if name not in BUNDLED_REFERENCES:
            raise ValueError(f"bundled reference must be one of {BUNDLED_REFERENCES}, got {name!r}")
        out.append((name, Image.fromarray(_rgb_array(getattr(skimage.data, name)()))))
    return out


def _load_references(references) -> list[tuple[str, Image.Image]]:
    if references is None:
        return bundled_references()
    if isinstance(references, (str, Path)):
        folder = Path(references)
        names = list_images(folder)
        if not names:
            raise ManifestError(f"references folder {folder} has no images")
        out = []
        for rel in names:
            try:
                with Image.open(folder / rel) as im:
                    out.append((Path(rel).with_suffix("").as_posix().replace("/", "_"), im.convert("RGB")))
            except OSError as exc:
                raise ManifestError(f"{folder / rel}: cannot decode image ({exc})") from None
        return out
    out = []
    for item in references:
        if isinstance(item, str):
            out.extend(bundled_references([item]))
        else:
            name, image = item
            out.append((str(name), Image.fromarray(_rgb_array(image))))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise ValueError(f"reference names must be unique, got {names}")
    return out


def build_synthetic_benchmark(out_dir, references=None, types: Sequence[str] = DEFAULT_TYPES,
                              levels: Sequence[int] = LEVELS, seed: int = 0, size: Size = None) -> Manifest:
    """Write references + distorted images + ``manifest.jsonl`` under `out_dir`; return the manifest.

    references: None (the first 8 bundled scikit-image photos), a folder of images, or a list of bundled names /
    (name, image) pairs. Records: each reference itself (level 0, no dist_type) and each (type, level) variant with
    ``ref`` pointing at its reference; ``group`` = the reference name; ``mos`` is absent (the level is the truth).
    """
    out_dir = Path(out_dir)
    types = tuple(types)
    for t in types:
        distortion(t)
    levels = _check_levels(levels)
    refs = _load_references(references)
    records, skipped = [], {}
    for name, image in refs:
        image = fit_size(image, size)

        ref_rel = f"references/{name}.png"
        (out_dir / "references").mkdir(parents=True, exist_ok=True)
        image.save(out_dir / ref_rel)
        records.append(Record(image=ref_rel, level=0, group=name))
        (out_dir / "images" / name).mkdir(parents=True, exist_ok=True)
        variants = make_variants(image, types, levels, seed, reference_key=name)
        n_identical = len(types) * len(levels) - len(variants)
        if n_identical:
            reason = "variant identical to its reference or a milder level"
            skipped[reason] = skipped.get(reason, 0) + n_identical
        for v in variants:
            rel = f"images/{name}/{name}__{v.dist_type}__{v.level}.png"
            v.image.save(out_dir / rel)
            records.append(Record(image=rel, ref=ref_rel, dist_type=v.dist_type, level=v.level, group=name))
    size_note = "native" if size is None else (f"{size}x{size}" if isinstance(size, int) else f"{size[0]}x{size[1]}")
    header = Header(name="synthetic", higher_better=True, subset=f"{len(refs)} refs x {len(types)} types x "
                    f"{len(levels)} levels, {size_note}, seed {seed}", root=".", source="build_synthetic_benchmark",
                    skipped=skipped)
    manifest = Manifest(header, records)
    manifest.write_jsonl(out_dir / "manifest.jsonl")
    manifest.header = replace(header, root=str(out_dir.resolve()))
    return manifest
