"""Round-2 same-content variants (docs/method.md, "Rounds"): each pool image gets `count` synthetic distortions from
`evoquality.data`'s generator, saved in the round directory and added to the pool; the image and its variants form
one variant group, from which the round's `variant_pairs` are drawn.

The (type, level) choices are drawn per image from (seed, image index), and the file names follow from them, so the
extended pool — and with it the round's fingerprint — is known before any pixel is written. The main process
writes missing files after the round directory has been claimed; a resumed run finds them and writes nothing.
Distortion levels only create images: they are never a label.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from evoquality.io.load import ImageRejected, load_image
from evoquality.labelling.pool import Pool
from evoquality.labelling.votes import derive_seed

VARIANTS_DIR = "variants"


@dataclass(frozen=True)
class VariantJob:
    source: str
    dist_type: str
    level: int
    path: str


def plan_variants(pool: Pool, out_dir, count: int, seed: int,
                  types: Optional[Sequence[str]] = None) -> tuple[Pool, list[VariantJob]]:
    """The pool extended with `count` variants per image, and the jobs that create the variant files.

    types: the distortion types to draw from (default: every type of `evoquality.data`), x 5 levels.
    The pool's own groups stay as they are; `variant_groups` holds each original with its own variants (the
    paper draws round-2 pairs "among an image and its variants").
    """
    from evoquality.data.distortions import DISTORTIONS, LEVELS

    if count < 1:
        raise ValueError(f"variants must be >= 1, got {count}")
    unknown = sorted(set(types or ()) - set(DISTORTIONS))
    if unknown:
        raise ValueError(f"variant_types: unknown distortion types {unknown}; known: {sorted(DISTORTIONS)}")
    combos = [(t, lv) for t in sorted(types or DISTORTIONS) for lv in LEVELS]
    if count > len(combos):
        raise ValueError(f"variants: asked for {count} per image but only {len(combos)} (type, level) exist")
    folder = Path(out_dir).resolve() / VARIANTS_DIR
    paths, jobs = list(pool.paths), []
    members: dict[int, list[int]] = {}
    for idx, src in enumerate(pool.paths):
        rng = np.random.Generator(np.random.PCG64(derive_seed(seed, idx, 0x7A41)))
        for c in sorted(rng.choice(len(combos), size=count, replace=False).tolist()):
            t, lv = combos[c]
            path = str(folder / f"{idx:07d}_{t}_{lv}.png")
            jobs.append(VariantJob(src, t, lv, path))
            members.setdefault(idx, [idx]).append(len(paths))
            paths.append(path)
    variant_groups = tuple(tuple(m) for m in members.values())
    return Pool(tuple(paths), pool.groups, variant_groups), jobs


def materialize_variants(jobs: list[VariantJob], max_pixels: int, seed: int) -> dict[str, str]:
    """Write the missing variant files; returns {variant path: reason} for those that could not be made (an
    unreadable source, a variant identical to its source). They are recorded in ``variants/failed.json`` for the
    summary, and their pairs are dropped as bad images."""
    import io
    import json

    from evoquality._files import atomic_write
    from evoquality.data.synthetic import make_variants

    failed: dict[str, str] = {}
    by_source: dict[str, list[VariantJob]] = {}
    for job in jobs:
        if not Path(job.path).exists():
            by_source.setdefault(job.source, []).append(job)
    for source, todo in by_source.items():
        Path(todo[0].path).parent.mkdir(parents=True, exist_ok=True)
        try:
            image = load_image(source, max_pixels)
        except ImageRejected as e:
            failed.update({job.path: f"source {source}: {e}" for job in todo})
            continue
        for job in todo:
            try:
                # drop_identical: a variant equal to its source (a chroma distortion of a grey photo) shows no
                # quality difference and must not become one side of a same-content pair.
                # Keyed by the pixels, not the path: the same pool and seed give the same variants wherever the run
                # directory (and so the pool's copy) lives.
                made = make_variants(image, types=[job.dist_type], levels=[job.level], seed=seed)
            except ValueError as e:  # e.g. smaller than the generator's minimum size
                failed[job.path] = f"cannot distort {source}: {e}"
                continue
            if not made:
                failed[job.path] = f"{job.dist_type} level {job.level} leaves {source} unchanged"
                continue
            png = io.BytesIO()
            made[0].image.save(png, format="PNG")
            atomic_write(job.path, png.getvalue())
    if failed:
        record = Path(jobs[0].path).parent / "failed.json"
        old = json.loads(record.read_text()) if record.exists() else {}
        atomic_write(record, json.dumps({**old, **failed}, indent=2) + "\n")
    return failed


def failed_variants(round_dir) -> dict[str, str]:
    import json

    record = Path(round_dir) / VARIANTS_DIR / "failed.json"
    return json.loads(record.read_text()) if record.exists() else {}
