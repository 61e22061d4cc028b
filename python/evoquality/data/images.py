"""Find the image a label row names, and turn a list of rows into a checked `Manifest`.

Label files and archives disagree on case (TID2013 lists ``i01_01_1.bmp`` next to ``I01.BMP``) and on sub-folders
(CSIQ's text labels give bare file names, the images sit in one folder per distortion). The resolver tries, in
order: the exact path, the same path case-insensitively, then a unique case-insensitive file name anywhere below
the image folder. It never guesses between two candidates.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

from evoquality.data.manifest import Header, Manifest, ManifestError, Record, dedupe

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MISSING_POLICIES = ("error", "skip")


def check_missing(missing: str) -> None:
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing must be one of {MISSING_POLICIES}, got {missing!r}")


class ImageResolver:
    """Resolve names to paths relative to `root`, searching the folders `dirs` (relative to root) in order."""

    def __init__(self, root: Path, dirs: Sequence[str] = ("",)):
        self.root = Path(root)
        self.dirs = list(dirs)
        self._index: dict[str, tuple[dict[str, str], dict[str, list[str]]]] = {}

    def _tables(self, d: str):
        if d not in self._index:
            by_path: dict[str, str] = {}
            by_name: dict[str, list[str]] = {}
            base = self.root / d
            for dirpath, _, files in os.walk(base):
                for f in files:
                    rel_root = os.path.relpath(os.path.join(dirpath, f), self.root)
                    rel_dir = os.path.relpath(os.path.join(dirpath, f), base)
                    by_path[rel_dir.lower()] = rel_root
                    by_name.setdefault(f.lower(), []).append(rel_root)
            self._index[d] = (by_path, by_name)
        return self._index[d]

    def resolve(self, name: str) -> Optional[str]:
        """Path of `name` relative to root (as a posix string), or None when no single file matches."""
        for d in self.dirs:
            if (self.root / d / name).is_file():
                return Path(d, name).as_posix()
        for d in self.dirs:
            by_path, by_name = self._tables(d)
            hit = by_path.get(name.lower())
            if hit is not None:
                return Path(hit).as_posix()
            candidates = by_name.get(Path(name).name.lower(), [])
            if len(candidates) == 1:
                return Path(candidates[0]).as_posix()
        return None


def finalize(
    header: Header,
    rows: list[tuple[str, Record]],
    resolver: Optional[ImageResolver],
    *,
    missing: str = "error",
    skipped: Optional[Counter] = None,
    ref_resolver: Optional[ImageResolver] = None,
) -> Manifest:
    """Deduplicate rows, check MOS against ``header.mos_range``, resolve images (and references) on disk.

    rows: ``(where, record)`` with ``record.image`` as the label file names it. missing: "error" raises one error
    listing the first missing images with their lines; "skip" drops them, counted as "missing image". A reference
    that cannot be found clears ``ref`` (counted as "reference not found"), so full-reference scorers skip that row
    instead of reading a wrong file.
    """
    check_missing(missing)
    skipped = Counter() if skipped is None else skipped
    if header.mos_range is not None:
        lo, hi = header.mos_range
        for where, record in rows:
            if record.mos is not None and not lo <= record.mos <= hi:
                raise ManifestError(
                    f"{where}: score {record.mos} is outside {header.name}'s range [{lo}, {hi}] "
                    "(a different label-file variant or a corrupted row?)"
                )
    unique = dedupe(rows, skipped)
    where_of = {r.image: w for w, r in rows}
    records, absent = [], []
    ref_resolver = ref_resolver or resolver
    for record in unique:
        if resolver is not None:
            path = resolver.resolve(record.image)
            if path is None:
                absent.append((where_of[record.image], record.image))
                continue
            ref = record.ref
            if ref is not None:
                ref = ref_resolver.resolve(ref)
                if ref is None:
                    skipped["reference not found"] += 1
            record = replace(record, image=path, ref=ref)
        records.append(record)
    if absent:
        if missing == "error":
            shown = "; ".join(f"{w}: {name}" for w, name in absent[:5])
            more = f" (and {len(absent) - 5} more)" if len(absent) > 5 else ""
            raise ManifestError(
                f"{len(absent)} image(s) listed in the labels are not under {resolver.root}: {shown}{more}. "
                "Pass missing='skip' to evaluate on the images that exist (they are counted)."
            )
        skipped["missing image"] += len(absent)
    if not records:
        raise ManifestError(f"{header.source or header.name}: no usable rows")
    root = str(resolver.root) if resolver is not None else header.root
    return Manifest(replace(header, root=root, n=len(records), skipped=dict(skipped)), records)


def list_images(folder: Path) -> list[str]:
    """Image files below `folder` (recursively), relative paths in sorted order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ManifestError(f"{folder} is not a folder")
    out = []
    for dirpath, _, files in os.walk(folder):
        for f in files:
            if f.lower().endswith(IMAGE_EXTENSIONS):
                out.append(Path(os.path.relpath(os.path.join(dirpath, f), folder)).as_posix())
    return sorted(out)


def std_from_var(var: Optional[float]) -> Optional[float]:
    return None if var is None else math.sqrt(max(var, 0.0))
