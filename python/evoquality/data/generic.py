"""Readers for label files that follow no particular dataset: CSV, JSON (Q-Align/DeQA ``[{image, gt_score}]``),
JSONL, whitespace text (``name mos [std]``) and a bare folder of images (no scores: for scoring, not evaluation).

Columns are recognised by common names (`IMAGE_KEYS`, `SCORE_KEYS`) unless given explicitly. Columns that are
recognised as neither are listed in ``header.ignored_columns``, so a table can say what was not used.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Optional

from evoquality._files import jsonl_rows
from evoquality.data.images import ImageResolver, check_missing, finalize, list_images
from evoquality.data.manifest import Header, Manifest, ManifestError, Record, read_manifest, read_text_file
from evoquality.data.tables import find_column, parse_float, read_csv, read_text

IMAGE_KEYS = ("image", "img_path", "image_path", "image_name", "img_name", "filename", "file", "name", "path")
SCORE_KEYS = ("mos", "gt_score", "score", "dmos", "label", "quality")
STD_KEYS = ("std", "sd", "mos_std", "std_score")
FORMATS = ("csv", "json", "jsonl", "txt", "folder")


def _header(path: Path, name, higher_better, mos_range, ignored=()) -> Header:
    return Header(name=name or path.stem, higher_better=higher_better,
                  mos_range=tuple(mos_range) if mos_range is not None else None, source=str(path),
                  ignored_columns=tuple(ignored))


def _objects_to_rows(objects, path: Path, image_key, score_key, std_key, where_of):
    """Rows from a list of JSON objects; keys are found on the first object and required on every one."""
    if not objects:
        raise ManifestError(f"{path}: no entries")
    first = objects[0]
    if not isinstance(first, dict):
        raise ManifestError(f"{where_of(0)}: expected a JSON object per entry, got {type(first).__name__}")
    keys = list(first)
    image_key = image_key or find_column(keys, IMAGE_KEYS, "image", where_of(0))
    score_key = score_key or find_column(keys, SCORE_KEYS, "score", where_of(0))
    std_key = std_key or find_column(keys, STD_KEYS, "std", where_of(0), required=False)
    ignored = [k for k in keys if k not in (image_key, score_key, std_key)]
    rows = []
    for i, obj in enumerate(objects):
        where = where_of(i)
        if not isinstance(obj, dict):
            raise ManifestError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        for key in (image_key, score_key):
            if key not in obj:
                raise ManifestError(f"{where}: missing key {key!r} (keys: {sorted(obj)})")
        image = obj[image_key]
        if not isinstance(image, str) or not image:
            raise ManifestError(f"{where}: {image_key!r} must be a non-empty string, got {image!r}")
        std = obj.get(std_key) if std_key else None
        rows.append((where, Record(image=image, mos=parse_float(obj[score_key], score_key, where),
                                   std=None if std is None else parse_float(std, std_key, where))))
    return rows, ignored


def read_labels(
    path,
    *,
    root=None,
    fmt: Optional[str] = None,
    name: Optional[str] = None,
    higher_better: bool = True,
    mos_range=None,
    image_key: Optional[str] = None,
    score_key: Optional[str] = None,
    std_key: Optional[str] = None,
    missing: str = "error",
) -> Manifest:
    """Read a generic label file (or folder) into a checked manifest.

    path: the label file, or a folder of images (fmt "folder": records without MOS). root: where image paths are
    relative to (default: the label file's folder). fmt: one of `FORMATS`, default from the suffix. A JSONL file
    whose first line is a manifest header is read as a manifest.
    """
    path = Path(path)
    check_missing(missing)
    if not path.exists():
        raise ManifestError(f"label file {path} does not exist")
    fmt = fmt or ("folder" if path.is_dir() else path.suffix.lower().lstrip("."))
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS} (or inferred from the suffix), got {fmt!r} for {path}")
    if fmt == "folder":
        images = list_images(path)
        if not images:
            raise ManifestError(f"{path}: no image files ({', '.join(('jpg', 'png', 'bmp', 'tif', 'webp'))})")
        header = Header(name=name or path.name, higher_better=higher_better, source=str(path), root=str(path))
        return Manifest(header, [Record(image=i) for i in images])
    root = Path(root) if root is not None else path.parent
    ignored: list[str] = []
    if fmt == "csv":
        columns, table = read_csv(path)
        img = image_key or find_column(columns, IMAGE_KEYS, "image", str(path))
        mos = score_key or find_column(columns, SCORE_KEYS, "score", str(path))
        for col in (img, mos):
            if col not in columns:
                raise ManifestError(f"{path}:1: column {col!r} not in header {columns}")
        std = std_key or find_column(columns, STD_KEYS, "std", str(path), required=False)
        ignored = [c for c in columns if c not in (img, mos, std)]
        rows = [(w, Record(image=r[img], mos=parse_float(r[mos], mos, w),
                           std=parse_float(r[std], std, w) if std and r.get(std) else None)) for w, r in table]
    elif fmt == "json":
        try:
            data = json.loads(read_text_file(path))
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path}:{exc.lineno}: not JSON ({exc.msg})") from None
        if isinstance(data, dict):  # {"files": [...]} / {"images": [...]} wrappers
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise ManifestError(f"{path}: expected a list of entries (or an object holding exactly one list)")
            data = lists[0]
        if not isinstance(data, list):
            raise ManifestError(f"{path}: expected a JSON list of entries, got {type(data).__name__}")
        rows, ignored = _objects_to_rows(data, path, image_key, score_key, std_key, lambda i: f"{path}[{i}]")
    elif fmt == "jsonl":
        lines = read_text_file(path).splitlines()
        if lines and '"header"' in lines[0]:
            try:
                if "header" in json.loads(lines[0]):
                    return read_manifest(path)
            except json.JSONDecodeError:
                pass
        numbered = list(jsonl_rows(lines, path, error=ManifestError))
        linenos, objects = [n for n, _ in numbered], [obj for _, obj in numbered]
        rows, ignored = _objects_to_rows(objects, path, image_key, score_key, std_key,
                                         lambda i: f"{path}:{linenos[i] if linenos else 1}")
    else:  # txt: "name mos [std]"
        rows = []
        for where, parts in read_text(path, 2, 3):
            rows.append((where, Record(image=parts[0], mos=parse_float(parts[1], "mos", where),
                                       std=parse_float(parts[2], "std", where) if len(parts) == 3 else None)))
    header = _header(path, name, higher_better, mos_range, ignored)
    return finalize(header, rows, ImageResolver(root, ("",)), missing=missing, skipped=Counter())
