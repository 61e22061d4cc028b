"""The readers on the real label files of the eight IQA sets and on Q-Align's / VisualQuality-R1's test lists, from
the public corpus beside the checkout (`iqa-labels/`; skipped where it is absent). Files the sets distribute as XLSX
or as one file per reference (SPAQ, CSIQ, KADID-10k's dmos.csv, PIPAL) are rebuilt from the corpus' published
values into the distributed layout; images are empty files created by name (the readers only check existence)."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from evoquality.data import ManifestError, load_dataset, read_labels

pytestmark = pytest.mark.corpus


def _touch(root: Path, names) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def _copy_csv_and_touch(source: Path, root: Path, column: str, image_dir: str) -> None:
    """Copy a label CSV into `root` and create the (empty) image files its `column` names under `image_dir`."""
    shutil.copy(source, root)
    with open(root / source.name, newline="") as fh:
        _touch(root / image_dir, [row[column] for row in csv.DictReader(fh)])


def _xlsx(path: Path, header, rows) -> None:
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("all_by_image")
    for row in [header, *rows]:
        sheet.append(list(row))
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)


@pytest.fixture(scope="module")
def labels(shared_data) -> Path:
    return shared_data / "iqa-labels"


def _check(m, n, mos_range, higher_better=True):
    mos = np.array([r.mos for r in m.records])
    assert len(m) == n and m.header.n == n
    assert m.header.higher_better is higher_better
    if mos_range is not None:
        lo, hi = m.header.mos_range
        assert (lo, hi) == mos_range and lo <= mos.min() and mos.max() <= hi
    assert mos.std() > 0


def test_koniq10k(labels, tmp_path):
    _copy_csv_and_touch(labels / "koniq10k" / "koniq10k_distributions_sets.csv", tmp_path, "image_name", "1024x768")
    m = load_dataset("koniq10k", tmp_path)
    _check(m, 10073, (0.0, 100.0))
    assert Counter(r.split for r in m.records) == {"training": 7058, "validation": 1000, "test": 2015}
    assert all(r.std is None for r in m.records) and "SD" in m.header.ignored_columns  # SD is on the 1-5 scale


def test_spaq(labels, tmp_path):
    with open(labels / "spaq" / "meta_info_SPAQDataset.csv", newline="") as fh:
        rows = [(r[0], float(r[1])) for r in list(csv.reader(fh))[1:]]
    _xlsx(tmp_path / "Annotations" / "MOS and Image attribute scores.xlsx", ("Image name", "MOS"), rows)
    _touch(tmp_path / "TestImage", [name for name, _ in rows])
    _check(load_dataset("spaq", tmp_path), 11125, (0.0, 100.0))


def test_livec(labels, tmp_path):
    shutil.copytree(labels / "livec" / "Data", tmp_path / "Data")
    _touch(tmp_path, (labels / "livec" / "release_image_files.txt").read_text().split())
    m = load_dataset("livec", tmp_path)
    _check(m, 1162, (0.0, 100.0))
    assert all(r.std is not None and 0 < r.std < 50 for r in m.records)
    assert Counter(r.split for r in load_dataset("livec", tmp_path, subset="all").records) == {"test": 1162,
                                                                                             "train": 7}


def test_kadid10k(labels, tmp_path):
    with open(labels / "kadid10k" / "meta_info_KADID10kDataset.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    # pyiqa's "std" column holds dmos.csv's var.
    (tmp_path / "dmos.csv").write_text("dist_img,ref_img,dmos,var\n" + "".join(
        f"{r['dist_name']},{r['ref_name']},{r['dmos']},{r['std']}\n" for r in rows))
    _touch(tmp_path / "images", {n for r in rows for n in (r["dist_name"], r["ref_name"])})
    m = load_dataset("kadid10k", tmp_path)
    _check(m, 10125, (1.0, 5.0))
    assert len({r.ref for r in m.records}) == 81 and len({r.dist_type for r in m.records}) == 25


def test_pipal(labels, tmp_path):
    by_ref = defaultdict(list)
    with open(labels / "pipal" / "meta_info_PIPALDataset.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            by_ref[r["hq_name"]].append(f"{r['dist_name']},{r['elo_score']}\n")
    (tmp_path / "Train_Label").mkdir()
    for ref, lines in by_ref.items():
        (tmp_path / "Train_Label" / f"{Path(ref).stem}.txt").write_text("".join(lines))
    _touch(tmp_path / "Train_Dist", [line.split(",")[0] for lines in by_ref.values() for line in lines])
    _touch(tmp_path / "Train_Ref", by_ref)
    m = load_dataset("pipal", tmp_path)
    _check(m, 23200, None)
    assert len({r.ref for r in m.records}) == 200


def test_agiqa3k(labels, tmp_path):
    _copy_csv_and_touch(labels / "agiqa3k" / "data.csv", tmp_path, "name", "AGIQA-3K")
    m = load_dataset("agiqa3k", tmp_path)
    _check(m, 2982, (0.0, 5.0))
    assert all(r.std is not None and r.std < 2 for r in m.records)


def _csiq_root(labels, tmp_path, variant: str) -> Path:
    root = tmp_path / variant
    root.mkdir()
    table = [line.split("\t") for line in (labels / "csiq" / "ref_dist_mos.txt").read_text().splitlines()]
    if variant == "xlsx":
        rows = [(int(i) if i.isdigit() else i, int(k), t, int(lev), float(s), float(d)) for i, k, t, lev, s, d in table]
        _xlsx(root / "csiq.DMOS.xlsx", ("image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos"), rows)
    elif variant == "label":
        shutil.copy(labels / "csiq" / "csiq_label.txt", root)
    else:  # the six-column text circulating as csiq_dmos.txt
        shutil.copy(labels / "csiq" / "ref_dist_mos.txt", root / "csiq_dmos.txt")
    names = (labels / "csiq" / "csiq_label.txt").read_text().split()[::2]
    _touch(root / "dst_imgs", names)
    _touch(root / "src_imgs", {f"{n.split('.')[0]}.png" for n in names})
    return root


def test_csiq_every_variant(labels, tmp_path):
    dmos = {}
    for variant in ("xlsx", "label", "dmos6"):
        m = load_dataset("csiq", _csiq_root(labels, tmp_path, variant))
        _check(m, 866, (0.0, 1.0), higher_better=False)
        assert (m.records[0].std is not None) == (variant != "label")
        dmos[variant] = {Path(r.image).name: r.mos for r in m.records}
    assert dmos["xlsx"] == dmos["dmos6"]
    assert dmos["label"].keys() == dmos["xlsx"].keys()
    assert max(abs(dmos["label"][k] - dmos["xlsx"][k]) for k in dmos["xlsx"]) < 1e-3  # 6 vs 3 decimals


def test_tid2013(labels, tmp_path):
    shutil.copy(labels / "tid2013" / "mos_with_names.txt", tmp_path)
    names = (tmp_path / "mos_with_names.txt").read_text().split()[1::2]
    assert sum(n != n.lower() for n in names) == 75  # mixed case in the official file; the archive is lower case
    _touch(tmp_path / "distorted_images", [n.lower() for n in names])
    _touch(tmp_path / "reference_images", [f"I{i:02d}.BMP" for i in range(1, 26)])
    _check(load_dataset("tid2013", tmp_path), 3000, (0.0, 9.0))


@pytest.mark.parametrize("name, n", [("qalign_agi.json", 2982), ("qalign_livec.json", 1169),
                                     ("qalign_csiq.json", 750), ("qalign_test_koniq.json", 2010),
                                     ("qalign_test_spaq.json", 2224), ("vqr1_KONIQ-10K_test_all.txt", 10073),
                                     ("vqr1_LIVEC_test_all.txt", 1169)])
def test_generic_lists(labels, tmp_path, name, n):
    path = labels / "json" / name
    if path.suffix == ".json":
        entries = json.loads(path.read_text())
        images = [e.get("image") or e.get("img_path") for e in entries]
    else:
        images = path.read_text().split()[::3]
    _touch(tmp_path, images)
    m = read_labels(path, root=tmp_path)
    assert len(m) == n and all(r.mos is not None for r in m.records)


def test_generic_list_without_a_score_names_the_file(labels, tmp_path):
    # Q-Align's KADID list keeps the score only inside "id" ("I66_01_01.png->4.63"): refused, never guessed.
    path = labels / "json" / "qalign_test_kadid.json"
    with pytest.raises(ManifestError, match=r"qalign_test_kadid\.json\[0\]: no score column"):
        read_labels(path, root=tmp_path)
