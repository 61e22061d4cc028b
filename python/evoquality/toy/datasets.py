"""The toy world on disk: the unlabelled evolution pool, its hidden truth, and the held-out benchmark.

    <run>/default_pool/images/<hash>.png      pool images, named by a hash of their pixels
    <run>/default_pool/pool.jsonl             {"image", "group"} per line: nothing about type or level
    <run>/toy_report/truth.jsonl              hidden truth of the pool (content, type, level): report only
    <run>/toy_report/heldout/                 held-out benchmark: images + manifest.jsonl with levels

The evolution code receives only ``default_pool/pool.jsonl``. A group is one *distortion series* (one crop under one
distortion type at five unknown levels): stage 1 draws its pairs inside groups (same-content pairs, docs/method.md
"Rounds"), so every pair has a defined better image for the report to check — but which one is never written where
the evolution can read it. The truth lives in a separate folder that only `report.py` and `controls.py` open (docs/toy.md).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

from evoquality._files import atomic_write, read_jsonl
from evoquality.toy import world

POOL_DIR = "default_pool"
POOL_MANIFEST = "pool.jsonl"
REPORT_DIR = "toy_report"
TRUTH_FILE = "truth.jsonl"
HELDOUT_DIR = "heldout"
COMPLETE = "COMPLETE"

POOL_CROPS_PER_PHOTO = 4      # 6 photos x 4 crops x 2 types x 5 levels = 240 pool images in 48 series
HELDOUT_CROPS_PER_PHOTO = 10  # 6 photos x 10 crops x 2 types x 5 levels = 600 held-out images in 120 series
POOL_SEED, HELDOUT_SEED = 101, 202


def _png_bytes(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _opaque(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def pool_manifest(run_dir) -> Path:
    """Where `write_pool` puts the pool manifest of a run directory (the `--images` of the default run)."""
    return Path(run_dir) / POOL_DIR / POOL_MANIFEST


def write_pool(run_dir) -> Path:
    """Write the pool (images + manifest) and its hidden truth once; return the pool manifest path."""
    run = Path(run_dir)
    pool, report = run / POOL_DIR, run / REPORT_DIR
    manifest = pool_manifest(run)
    if (pool / COMPLETE).is_file() and (report / TRUTH_FILE).is_file():
        return manifest
    (pool / "images").mkdir(parents=True, exist_ok=True)
    report.mkdir(parents=True, exist_ok=True)
    lines, truth = [], []
    for item in world.variants(world.EVOLUTION_PHOTOS, POOL_CROPS_PER_PHOTO, POOL_SEED,
                                 which_half=world.POOL_HALF):
        data = _png_bytes(item.image)
        name = f"images/{hashlib.sha256(data).hexdigest()[:16]}.png"
        (pool / name).write_bytes(data)
        lines.append({"image": name, "group": _opaque(f"{POOL_SEED}:{item.group}")})
        truth.append({"image": str((pool / name).resolve()), "content": item.content, "dist_type": item.dist_type,
                      "level": item.level})
    _write_jsonl(report / TRUTH_FILE, truth)
    _write_jsonl(manifest, lines)
    (pool / COMPLETE).write_text("")
    return manifest


def write_heldout(run_dir) -> Path:
    """Write the held-out benchmark once (the other half of the pool's photos); return its manifest path."""
    from evoquality.data.manifest import Header, Manifest, Record

    folder = (Path(run_dir) / REPORT_DIR / HELDOUT_DIR).resolve()  # the manifest's root must not depend on the cwd
    path = folder / "manifest.jsonl"
    if (folder / COMPLETE).is_file():
        return path
    (folder / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for item in world.variants(world.EVOLUTION_PHOTOS, HELDOUT_CROPS_PER_PHOTO, HELDOUT_SEED,
                                 which_half=world.HELDOUT_HALF):
        name = f"images/{item.content.replace('#', '_')}__{item.dist_type}__{item.level}.png"
        item.image.save(folder / name)
        records.append(Record(image=name, ref=item.content, dist_type=item.dist_type, level=item.level,
                              group=item.content))
    header = Header(name="toy-heldout", higher_better=True, mos_range=None, n=len(records), root=str(folder),
                    subset=f"photos {', '.join(world.EVOLUTION_PHOTOS)} (the half the pool does not use); "
                           f"{HELDOUT_CROPS_PER_PHOTO} crops each; "
                           f"types {', '.join(world.TYPES)}")
    Manifest(header, records).write_jsonl(path)
    (folder / COMPLETE).write_text("")
    return path


def read_truth(run_dir) -> dict[str, dict]:
    """Absolute pool image path -> {"content", "dist_type", "level"} (the report's ground truth)."""
    return {row["image"]: row for _, row in read_jsonl(Path(run_dir) / REPORT_DIR / TRUTH_FILE)}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write(path, "".join(json.dumps(r) + "\n" for r in rows))
