"""The one internal description of an IQA test set: a header plus one record per image (docs/datasets.md, "Manifests").

Every reader (KonIQ's CSV, SPAQ's XLSX, LIVE Challenge's .mat, a user's JSON, the synthetic generator) produces a
`Manifest`; evaluation only ever sees manifests. On disk it is JSONL: the first line is ``{"header": {...}}``, each
further line one record. Image paths are relative to ``header.root`` when that is set (so a manifest can move
with its images), absolute otherwise.

Skips are never silent: a reader that drops a row (duplicate, missing image, excluded subset) counts it under a
reason in ``header.skipped``, and tables print the subset and n next to every number.
"""

from __future__ import annotations

import codecs
import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Iterable, Optional, Union

from evoquality._files import atomic_write, jsonl_rows

PathLike = Union[str, Path]


class ManifestError(ValueError):
    """A label file or manifest is malformed; the message names the file and line (or record) at fault."""


# Byte-order marks, longest first (a UTF-32-LE mark begins with the UTF-16-LE one). Windows tools write UTF-16 with
# a mark (Excel's "Unicode Text", PowerShell's `>`) and UTF-8 with one (Excel's "CSV UTF-8", Notepad).
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def read_text_file(path: PathLike) -> str:
    """The text of a label file or manifest: UTF-8, or any UTF with a byte-order mark, read alike (the mark dropped).
    Anything else is a ManifestError naming the file and line, as is a web page saved under the file's name."""
    path = Path(path)
    raw = path.read_bytes()
    encoding = next((enc for bom, enc in _BOMS if raw.startswith(bom)), "utf-8")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].decode(encoding, errors="replace").count("\n") + 1
        raise ManifestError(f"{path}:{line}: not valid {encoding.split('-sig')[0].upper()} text: {exc.reason} at "
                            f"byte {exc.start}; save it as UTF-8 (or UTF-16 with a byte-order mark)") from None
    if "\x00" in text:  # ASCII in UTF-16 is valid UTF-8 with a NUL after every character: never a label file
        line = text[: text.index("\x00")].count("\n") + 1
        raise ManifestError(f"{path}:{line}: NUL characters in the text; it looks like UTF-16 without a byte-order "
                            "mark: save it as UTF-8 (or UTF-16 with a byte-order mark)")
    head = text.lstrip()[:200].lower()
    if head.startswith(("<!doctype html", "<html", "<head", "<body")):
        raise ManifestError(f"{path}:1: an HTML page, not a label file (a web page saved under the file's name? "
                            "download the raw file instead, e.g. GitHub's 'Raw' link)")
    return text


@dataclass(frozen=True)
class Record:
    """One image of a test set.

    image: path relative to the manifest root (or absolute). mos: mean opinion score in the set's own scale and
    direction (``None`` for unlabelled images, e.g. a folder to score or a synthetic benchmark, whose ground truth is
    ``level``). ref: the pristine reference image, when the set has one. level: distortion level, 1 = mildest
    (0 = the pristine reference itself in synthetic sets). group: the unit resampled by bootstrap CIs (the
    reference content when known, so that all distortions of one photo move together).
    """

    image: str
    mos: Optional[float] = None
    std: Optional[float] = None
    ref: Optional[str] = None
    dist_type: Optional[str] = None
    level: Optional[int] = None
    group: Optional[str] = None
    split: Optional[str] = None

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


_RECORD_FIELDS = {f.name for f in fields(Record)}


@dataclass(frozen=True)
class Header:
    """What a table needs to state next to a number: the set, its direction and scale, the subset and its size.

    higher_better: False for sets labelled with DMOS where a lower value means better quality (CSIQ); metrics flip
    the sign so a good model always gets positive correlations. skipped: reason -> number of rows dropped.
    """

    name: str
    higher_better: bool = True
    mos_range: Optional[tuple[float, float]] = None
    n: int = 0
    subset: str = "all"
    root: Optional[str] = None
    source: Optional[str] = None
    skipped: dict = field(default_factory=dict)
    ignored_columns: tuple = ()

    def to_json(self) -> dict:
        out = asdict(self)
        out["mos_range"] = list(self.mos_range) if self.mos_range is not None else None
        out["ignored_columns"] = list(self.ignored_columns)
        return out


@dataclass
class Manifest:
    header: Header
    records: list[Record]

    def __post_init__(self):
        if self.header.n != len(self.records):
            self.header = replace(self.header, n=len(self.records))

    def __len__(self) -> int:
        return len(self.records)

    @property
    def name(self) -> str:
        return self.header.name

    def image_path(self, record_or_path: Union[Record, str]) -> Path:
        """Absolute-or-root-relative path of an image (a record's image, or a ref path)."""
        rel = record_or_path.image if isinstance(record_or_path, Record) else record_or_path
        path = Path(rel)
        if path.is_absolute() or self.header.root is None:
            return path
        return Path(self.header.root) / path

    @property
    def has_mos(self) -> bool:
        return any(r.mos is not None for r in self.records)

    def filter(self, keep, subset: str, reason: str) -> "Manifest":
        """Records where ``keep(record)`` holds; the dropped ones are counted under `reason`."""
        kept = [r for r in self.records if keep(r)]
        skipped = dict(self.header.skipped)
        if len(kept) != len(self.records):
            skipped[reason] = skipped.get(reason, 0) + len(self.records) - len(kept)
        return Manifest(replace(self.header, subset=subset, skipped=skipped), kept)

    def write_jsonl(self, path: PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [{"header": self.header.to_json()}] + [record.to_json() for record in self.records]
        atomic_write(path, "".join(json.dumps(line) + "\n" for line in lines))
        return path


def _number(value, what: str, where: str) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ManifestError(f"{where}: {what} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ManifestError(f"{where}: {what} must be finite, got {value!r}")
    return value


def record_from_json(obj: dict, where: str) -> Record:
    """Validate one JSON object as a record; `where` ("file:line") prefixes every error."""
    if not isinstance(obj, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    unknown = set(obj) - _RECORD_FIELDS
    if unknown:
        raise ManifestError(f"{where}: unknown fields {sorted(unknown)}; known: {sorted(_RECORD_FIELDS)}")
    image = obj.get("image")
    if not isinstance(image, str) or not image:
        raise ManifestError(f"{where}: 'image' must be a non-empty string, got {image!r}")
    level = obj.get("level")
    if level is not None and (isinstance(level, bool) or not isinstance(level, int)):
        raise ManifestError(f"{where}: 'level' must be an integer, got {level!r}")
    for key in ("ref", "dist_type", "group", "split"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            raise ManifestError(f"{where}: {key!r} must be a string, got {obj[key]!r}")
    return Record(
        image=image,
        mos=_number(obj.get("mos"), "'mos'", where),
        std=_number(obj.get("std"), "'std'", where),
        ref=obj.get("ref"),
        dist_type=obj.get("dist_type"),
        level=level,
        group=obj.get("group"),
        split=obj.get("split"),
    )


def read_manifest(path: PathLike) -> Manifest:
    """Read a manifest JSONL written by `Manifest.write_jsonl` (header line first)."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    lines = read_text_file(path).splitlines()
    if not lines:
        raise ManifestError(f"{path}: empty file, expected a header line")
    rows = jsonl_rows(lines, path, error=ManifestError)
    lineno, first = next(rows, (None, None))
    if lineno != 1 or not isinstance(first, dict) or "header" not in first:
        raise ManifestError(f"{path}:1: the first line must be {{\"header\": {{...}}}}")
    h = dict(first["header"])
    if not isinstance(h.get("name"), str):
        raise ManifestError(f"{path}:1: header 'name' must be a string")
    if h.get("mos_range") is not None:
        h["mos_range"] = tuple(float(x) for x in h["mos_range"])
    h["ignored_columns"] = tuple(h.get("ignored_columns") or ())
    known = {f.name for f in fields(Header)}
    unknown = set(h) - known
    if unknown:
        raise ManifestError(f"{path}:1: unknown header fields {sorted(unknown)}")
    header = Header(**h)
    if header.root is not None and not Path(header.root).is_absolute():
        # A relative root is relative to the manifest's folder, so the folder can move as a whole.
        header = replace(header, root=str((path.parent / header.root).resolve()))
    records = [record_from_json(obj, f"{path}:{lineno}") for lineno, obj in rows]
    if header.n not in (0, len(records)):
        raise ManifestError(f"{path}: header says n={header.n} but the file has {len(records)} records")
    return Manifest(header, records)


def dedupe(rows: Iterable[tuple[str, Record]], skipped: Counter) -> list[Record]:
    """Drop exact duplicate rows (counted as "duplicate row"); the same image with a different score is an error.

    rows: (where, record) pairs, where = "file:line" for the message.
    """
    seen: dict[str, tuple[str, Record]] = {}
    out = []
    for where, record in rows:
        previous = seen.get(record.image)
        if previous is None:
            seen[record.image] = (where, record)
            out.append(record)
        elif previous[1] == record:
            skipped["duplicate row"] += 1
        else:
            raise ManifestError(
                f"{where}: image {record.image!r} is listed again with different values "
                f"(first at {previous[0]}: mos={previous[1].mos}, here mos={record.mos})"
            )
    return out
