"""The unlabelled image pool: a folder, a manifest file, or a list of paths (a dataset reader's output).

The pool is an ordered list of absolute paths; its order and content are fingerprinted so that a round directory
is never resumed against a different pool. Optional `groups` (same content: a reference and its distorted versions)
come from a manifest's ``ref`` field.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, Union

from evoquality._files import read_jsonl

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")


@dataclass(frozen=True)
class Pool:
    """paths: absolute image paths (the pool order); groups: lists of indices into `paths` that show the same
    content (may be empty); variant_groups: each pool image with its own synthetic variants (round 2)."""

    paths: tuple[str, ...]
    groups: tuple[tuple[int, ...], ...] = field(default=())
    variant_groups: tuple[tuple[int, ...], ...] = field(default=())

    def digest(self) -> str:
        """sha256 over the ordered paths: changes when an image is added, removed or renamed."""
        h = hashlib.sha256()
        for p in self.paths:
            h.update(p.encode("utf-8", "surrogateescape"))
            h.update(b"\0")
        return h.hexdigest()


def discover_pool(source: Union[str, os.PathLike, Sequence[str]]) -> Pool:
    """Images of a folder (recursive, sorted), of a manifest (.jsonl with an ``image`` field per line, .json list,
    or .txt with one path per line; relative paths resolve against the manifest's folder), or an explicit list."""
    if not isinstance(source, (str, os.PathLike)):
        paths = [str(Path(p).resolve()) for p in source]
        return _checked(Pool(tuple(paths)), "images")
    src = Path(source)
    if src.is_dir():
        found = sorted(
            str(p.resolve()) for p in src.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        return _checked(Pool(tuple(found)), f"images folder {src}")
    if src.is_file():
        return _checked(_read_manifest(src), f"images manifest {src}")
    raise ValueError(f"images: {str(source)!r} is neither a folder nor a manifest file")


def _checked(pool: Pool, what: str) -> Pool:
    if len(pool.paths) < 2:
        raise ValueError(f"{what} holds {len(pool.paths)} image(s); pairs need at least 2")
    if len(set(pool.paths)) != len(pool.paths):
        raise ValueError(f"{what} lists the same image more than once")
    return pool


def _read_manifest(path: Path) -> Pool:
    suffix = path.suffix.lower()
    if suffix == ".jsonl" and _has_header_line(path):
        return _read_internal_manifest(path)
    base = path.parent
    entries: list[tuple[str, object]] = []
    if suffix == ".jsonl":
        for lineno, obj in read_jsonl(path, error=lambda msg: ValueError(f"images manifest {msg}")):
            if not (isinstance(obj, dict) and isinstance(obj.get("image"), str)):
                raise ValueError(f"images manifest {path}: line {lineno} has no 'image' string field")
            entries.append((obj["image"], obj.get("group") or obj.get("ref")))
    elif suffix == ".json":
        with open(path, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"images manifest {path}: not JSON ({e.msg})") from None
        if not isinstance(data, list):
            raise ValueError(f"images manifest {path}: expected a JSON list of paths or {{'image': ...}} objects")
        for i, obj in enumerate(data):
            if isinstance(obj, str):
                entries.append((obj, None))
            elif isinstance(obj, dict) and isinstance(obj.get("image"), str):
                entries.append((obj["image"], obj.get("group") or obj.get("ref")))
            else:
                raise ValueError(f"images manifest {path}: entry {i} is neither a path nor has an 'image' field")
    else:
        with open(path, encoding="utf-8") as f:
            entries = [(line.strip(), None) for line in f if line.strip()]
    paths = tuple(str((base / p).resolve()) for p, _ in entries)
    return Pool(paths, _groups([key for _, key in entries]))


def _has_header_line(path: Path) -> bool:
    with open(path, encoding="utf-8") as f:
        first = f.readline()
    try:
        obj = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(obj, dict) and "header" in obj


def _read_internal_manifest(path: Path) -> Pool:
    """A dataset reader's output (`evoquality.data.manifest`): its images, grouped by content (group, else ref)."""
    from evoquality.data.manifest import read_manifest

    manifest = read_manifest(path)
    paths = tuple(str(manifest.image_path(r).resolve()) for r in manifest.records)
    return Pool(paths, _groups([r.group or r.ref for r in manifest.records]))


def _groups(keys: Sequence[object]) -> tuple[tuple[int, ...], ...]:
    """Indices sharing a content key; singleton groups hold no same-content pair and are left out."""
    by_key: dict[str, list[int]] = {}
    for idx, key in enumerate(keys):
        if key is not None:
            by_key.setdefault(str(key), []).append(idx)
    return tuple(tuple(v) for v in by_key.values() if len(v) > 1)
