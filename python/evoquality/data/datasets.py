"""Readers for the label files of the eight standard IQA sets, in the layouts they are distributed in.

One `DatasetSpec` per set (pyiqa-style per-dataset config: direction, scale, where the labels and images live, named
subsets). Formats and directions are in docs/datasets.md. The images stay on the user's disk; `load_dataset(name, root)`
reads the label file under `root` and checks that every listed image exists.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from evoquality.data.images import ImageResolver, check_missing, finalize, std_from_var
from evoquality.data.manifest import Header, Manifest, ManifestError, Record, read_text_file
from evoquality.data.tables import find_column, parse_float, read_csv, read_mat_vector, read_text, read_xlsx

# A reader turns one label file into ``(where, record)`` rows, the MOS range that file variant uses, and the names
# of the columns it did not use (reported in the header).
Rows = list[tuple[str, Record]]
Reader = Callable[[Path, Counter], tuple[Rows, Optional[tuple[float, float]], tuple]]


@dataclass(frozen=True)
class DatasetSpec:
    """name: canonical name; label_files: candidates relative to root, first existing wins; image_dirs / ref_dirs:
    folders (relative to root) searched for images / references; subsets: name -> predicate on a record."""

    name: str
    higher_better: bool
    label_files: tuple[str, ...]
    image_dirs: tuple[str, ...]
    reader: Reader
    ref_dirs: tuple[str, ...] = ()
    default_subset: str = "all"
    subsets: dict = field(default_factory=dict)
    aliases: tuple[str, ...] = ()


def _koniq(path: Path, skipped: Counter):
    columns, rows = read_csv(path)
    img = find_column(columns, ["image_name"], "image", str(path))
    mos = find_column(columns, ["MOS"], "MOS", str(path))
    sd = find_column(columns, ["SD"], "SD", str(path), required=False)
    split = find_column(columns, ["set"], "set", str(path), required=False)
    # koniq10k_scores_and_distributions.csv scores on 1-5 (it has MOS_zscore); the _sets file on 0-100. SD is the
    # rating spread on the 1-5 scale in both, and the 0-100 MOS is a z-score rescaling that no factor maps SD onto:
    # std is kept only next to the 1-5 MOS, and SD is an ignored column of the _sets file.
    on_rating_scale = find_column(columns, ["MOS_zscore"], "", "", required=False) is not None
    mos_range = (1.0, 5.0) if on_rating_scale else (0.0, 100.0)
    sd = sd if on_rating_scale else None
    out = []
    for where, row in rows:
        out.append((where, Record(
            image=row[img], mos=parse_float(row[mos], mos, where),
            std=parse_float(row[sd], sd, where) if sd and row.get(sd) else None,
            split=row[split] if split else None,
        )))
    used = {img, mos, sd, split}
    return out, mos_range, tuple(c for c in columns if c not in used)


def _spaq(path: Path, skipped: Counter):
    columns, rows = read_xlsx(path, ["Image name", "MOS"])
    img, mos = find_column(columns, ["Image name"], "image", str(path)), find_column(columns, ["MOS"], "MOS", str(path))
    out = [(w, Record(image=str(r[img]).strip(), mos=parse_float(r[mos], mos, w))) for w, r in rows]
    return out, (0.0, 100.0), tuple(c for c in columns if c not in (img, mos))


_LIVEC_TRAIN = re.compile(r"^t\d+\.bmp$", re.IGNORECASE)


def _livec(path: Path, skipped: Counter):
    data = path.parent
    names = read_mat_vector(path, ["AllImages_release"])
    mos = read_mat_vector(data / "AllMOS_release.mat", ["AllMOS_release"])
    std_file = data / "AllStdDev_release.mat"
    std = read_mat_vector(std_file, ["AllStdDev_release"]) if std_file.is_file() else [None] * len(names)
    if not len(names) == len(mos) == len(std):
        raise ManifestError(
            f"{data}: AllImages_release has {len(names)} entries, AllMOS_release {len(mos)}, "
            f"AllStdDev_release {len(std)}; they must be equal"
        )
    out = []
    for i, (name, m, s) in enumerate(zip(names, mos, std)):
        where = f"{path}[{i + 1}]"  # the entry's 1-based index, as MATLAB users count
        if not isinstance(name, str):
            raise ManifestError(f"{where}: image name is not a string: {name!r}")
        # The first seven entries (t1..t7) are the release's training images, in Images/trainingImages.
        split = "train" if _LIVEC_TRAIN.match(name) else "test"
        out.append((where, Record(
            image=name, mos=parse_float(m, "AllMOS_release", where),
            std=None if s is None else parse_float(s, "AllStdDev_release", where), split=split,
        )))
    return out, (0.0, 100.0), ()


def _kadid(path: Path, skipped: Counter):
    columns, rows = read_csv(path)
    c = {k: find_column(columns, [k], k, str(path)) for k in ("dist_img", "ref_img", "dmos")}
    var = find_column(columns, ["var"], "var", str(path), required=False)
    out = []
    for where, row in rows:
        m = re.match(r"^(I\d+)_(\d+)_(\d+)\.\w+$", row[c["dist_img"]], re.IGNORECASE)
        if m is None:
            raise ManifestError(f"{where}: dist_img {row[c['dist_img']]!r} is not named like I01_01_01.png")
        out.append((where, Record(
            image=row[c["dist_img"]], mos=parse_float(row[c["dmos"]], "dmos", where),
            std=std_from_var(parse_float(row[var], "var", where)) if var else None,
            ref=row[c["ref_img"]], dist_type=m.group(2), level=int(m.group(3)), group=row[c["ref_img"]],
        )))
    used = set(c.values()) | {var}
    return out, (1.0, 5.0), tuple(x for x in columns if x not in used)


def _pipal(path: Path, skipped: Counter):
    # Train_Label/ holds one "dist_name,elo" text file per reference.
    files = sorted(path.glob("*.txt")) if path.is_dir() else [path]
    if not files:
        raise ManifestError(f"{path}: no .txt label files")
    out = []
    for f in files:
        for where, (name, elo) in read_text(f, 2, 2, sep=","):
            m = re.match(r"^(A\d+)_(\d+)_(\d+)\.\w+$", name)
            if m is None:
                raise ManifestError(f"{where}: image name {name!r} is not named like A0001_00_00.bmp")
            out.append((where, Record(image=name, mos=parse_float(elo, "elo", where), ref=f"{m.group(1)}.bmp",
                                      dist_type=m.group(2), group=m.group(1))))
    return out, None, ()  # Elo scores are unbounded


def _agiqa3k(path: Path, skipped: Counter):
    columns, rows = read_csv(path)
    img = find_column(columns, ["name"], "name", str(path))
    mos = find_column(columns, ["mos_quality"], "mos_quality", str(path))
    std = find_column(columns, ["std_quality"], "std_quality", str(path), required=False)
    prompt = find_column(columns, ["prompt"], "prompt", str(path), required=False)
    out = []
    for where, row in rows:
        out.append((where, Record(
            image=row[img], mos=parse_float(row[mos], mos, where),
            std=parse_float(row[std], std, where) if std and row.get(std) else None,
            group=row[prompt] if prompt else None,  # images of one prompt share content: resample them together
        )))
    used = {img, mos, std, prompt}
    return out, (0.0, 5.0), tuple(c for c in columns if c not in used)


# CSIQ's spreadsheet names distortions in words; its files carry a tag: 1600.AWGN.1.png, 1600.jpeg2000.3.png.
_CSIQ_TAGS = {"noise": "AWGN", "awgn": "AWGN", "jpeg": "JPEG", "jpeg 2000": "jpeg2000", "jpeg2000": "jpeg2000",
              "fnoise": "fnoise", "blur": "BLUR", "contrast": "contrast"}


def _csiq_record(where: str, name: str, dmos: float, std=None) -> Record:
    m = re.match(r"^([^.]+)\.([^.]+)\.(\d+)\.\w+$", name)
    if m is None:
        raise ManifestError(f"{where}: image name {name!r} is not named like 1600.AWGN.1.png")
    dist = {v.lower(): k for k, v in _CSIQ_TAGS.items() if k not in ("awgn", "jpeg2000")}.get(m.group(2).lower())
    return Record(image=name, mos=dmos, std=std, ref=f"{m.group(1)}.png", dist_type=dist or m.group(2).lower(),
                  level=int(m.group(3)), group=m.group(1))


def _csiq(path: Path, skipped: Counter):
    out = []
    if path.suffix.lower() == ".xlsx":
        columns, rows = read_xlsx(path, ["image", "dst_type", "dst_lev", "dmos"])
        std = find_column(columns, ["dmos_std"], "dmos_std", str(path), required=False)
        for where, row in rows:
            tag = _CSIQ_TAGS.get(str(row["dst_type"]).strip().lower())
            if tag is None:
                raise ManifestError(f"{where}: unknown dst_type {row['dst_type']!r}; known: {sorted(_CSIQ_TAGS)}")
            image = str(row["image"]).strip()
            if isinstance(row["image"], float) and row["image"].is_integer():
                image = str(int(row["image"]))  # Excel stores "1600" as the number 1600.0
            level = int(parse_float(row["dst_lev"], "dst_lev", where))
            name = f"{image}.{tag}.{level}.png"
            s = parse_float(row[std], std, where) if std and row.get(std) is not None else None
            out.append((where, _csiq_record(where, name, parse_float(row["dmos"], "dmos", where), s)))
        ignored = tuple(c for c in columns if c.lower() not in {"image", "dst_type", "dst_lev", "dmos", "dmos_std"})
        return out, (0.0, 1.0), ignored
    # Text variants: "name dmos" (HyperIQA's csiq_label.txt, csiq.txt) or the spreadsheet's six columns
    # "image dst_idx dst_type dst_lev dmos_std dmos", tab-separated (a csiq_dmos.txt that circulates).
    with_tabs = "\t" in read_text_file(path)
    for where, parts in read_text(path, 2, 6, sep="\t" if with_tabs else None):
        if len(parts) == 2:
            out.append((where, _csiq_record(where, parts[0], parse_float(parts[1], "dmos", where))))
            continue
        if len(parts) != 6:
            raise ManifestError(f"{where}: expected 2 fields (name dmos) or 6 (image dst_idx dst_type dst_lev "
                                f"dmos_std dmos), got {len(parts)}")
        if parts[0].lower() == "image":
            continue  # a header row
        image, _, dst_type, level, std, dmos = parts
        tag = _CSIQ_TAGS.get(dst_type.strip().lower())
        if tag is None:
            raise ManifestError(f"{where}: unknown dst_type {dst_type!r}; known: {sorted(_CSIQ_TAGS)}")
        name = f"{image}.{tag}.{int(parse_float(level, 'dst_lev', where))}.png"
        out.append((where, _csiq_record(where, name, parse_float(dmos, "dmos", where),
                                        parse_float(std, "dmos_std", where))))
    return out, (0.0, 1.0), ()


def _tid2013(path: Path, skipped: Counter):
    out = []
    for where, (mos, name) in read_text(path, 2, 2):
        m = re.match(r"^i(\d+)_(\d+)_(\d+)\.\w+$", name, re.IGNORECASE)
        if m is None:
            raise ManifestError(f"{where}: image name {name!r} is not named like i01_01_1.bmp")
        ref = f"I{m.group(1)}.BMP"
        out.append((where, Record(image=name, mos=parse_float(mos, "MOS", where), ref=ref, dist_type=m.group(2),
                                  level=int(m.group(3)), group=ref)))
    return out, (0.0, 9.0), ()


DATASETS: dict[str, DatasetSpec] = {s.name: s for s in (
    DatasetSpec("koniq10k", True, ("koniq10k_distributions_sets.csv", "koniq10k_scores_and_distributions.csv"),
                ("1024x768", "512x384", "images", ""), _koniq, aliases=("koniq", "koniq-10k"),
                subsets={"test": lambda r: r.split == "test"}),
    DatasetSpec("spaq", True, ("Annotations/MOS and Image attribute scores.xlsx",), ("TestImage", "images", ""), _spaq),
    DatasetSpec("livec", True, ("Data/AllImages_release.mat",), ("Images", ""), _livec, default_subset="test",
                aliases=("live-challenge", "livechallenge", "live-wild", "clive"),
                subsets={"test": lambda r: r.split == "test"}),
    DatasetSpec("kadid10k", True, ("dmos.csv",), ("images", ""), _kadid, aliases=("kadid", "kadid-10k")),
    DatasetSpec("pipal", True, ("Train_Label",), ("Train_Dist", ""), _pipal, ref_dirs=("Train_Ref", "")),
    DatasetSpec("agiqa3k", True, ("data.csv",), ("AGIQA-3K", "images", ""), _agiqa3k, aliases=("agiqa-3k",)),
    DatasetSpec("csiq", False, ("csiq.DMOS.xlsx", "csiq_dmos.txt", "csiq_label.txt", "csiq.txt"), ("dst_imgs", ""),
                _csiq, ref_dirs=("src_imgs", ""), subsets={"no_contrast": lambda r: r.dist_type != "contrast"}),
    DatasetSpec("tid2013", True, ("mos_with_names.txt",), ("distorted_images", ""), _tid2013,
                ref_dirs=("reference_images", "")),
)}
_ALIASES = {alias: spec.name for spec in DATASETS.values() for alias in (spec.name, *spec.aliases)}


def dataset_spec(name: str) -> DatasetSpec:
    key = _ALIASES.get(name.strip().lower())
    if key is None:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)} (or an alias {sorted(_ALIASES)}), got {name!r}")
    return DATASETS[key]


def read_dataset(
    name: str,
    root,
    *,
    label_file=None,
    subset: Optional[str] = None,
    missing: str = "error",
) -> Manifest:
    """Read a standard IQA set laid out as distributed under `root` into a checked manifest.

    label_file: overrides the spec's candidates (relative to root or absolute). subset: "all", or one of the spec's
    named subsets (default: the spec's, e.g. LIVE Challenge without its 7 training images). missing: see `finalize`.
    """
    spec = dataset_spec(name)
    check_missing(missing)
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"root {root} is not a folder (dataset {spec.name})")
    candidates = [Path(label_file)] if label_file is not None else [Path(c) for c in spec.label_files]
    paths = [c if c.is_absolute() else root / c for c in candidates]
    path = next((p for p in paths if p.exists()), None)
    if path is None:
        raise ManifestError(f"{spec.name}: no label file found; looked for {[str(p) for p in paths]}")
    subset = subset or spec.default_subset
    if subset != "all" and subset not in spec.subsets:
        raise ValueError(f"subset must be 'all' or one of {sorted(spec.subsets)} for {spec.name}, got {subset!r}")
    skipped: Counter = Counter()
    rows, mos_range, ignored = spec.reader(path, skipped)
    header = Header(name=spec.name, higher_better=spec.higher_better, mos_range=mos_range, source=str(path),
                    ignored_columns=tuple(c for c in ignored if c))
    manifest = finalize(header, rows, ImageResolver(root, spec.image_dirs), missing=missing, skipped=skipped,
                        ref_resolver=ImageResolver(root, spec.ref_dirs or spec.image_dirs))
    if subset != "all":
        manifest = manifest.filter(spec.subsets[subset], subset, f"outside subset {subset!r}")
    return manifest
