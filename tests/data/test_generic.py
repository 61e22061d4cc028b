"""Generic label files (CSV / JSON / JSONL / text / folder) and the manifest JSONL format."""

import json

import numpy as np
import pytest
from PIL import Image

from evoquality.data import Header, Manifest, ManifestError, Record, load_dataset, read_labels, read_manifest


@pytest.fixture
def images(tmp_path):
    for name in ("a.png", "b.png", "sub/c.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_csv_autodetects_columns_and_reports_ignored(images):
    (images / "labels.csv").write_text("\ufefffilename;MOS;std;camera\na.png;3.5;0.5;x\nb.png;2;;y\n")
    m = read_labels(images / "labels.csv", name="mine", mos_range=(1, 5))
    assert [(r.image, r.mos, r.std) for r in m.records] == [("a.png", 3.5, 0.5), ("b.png", 2.0, None)]
    assert m.header.ignored_columns == ("camera",) and m.header.mos_range == (1.0, 5.0) and m.name == "mine"


def test_csv_without_score_column_lists_columns(images):
    (images / "labels.csv").write_text("image,rating\na.png,3\n")
    with pytest.raises(ManifestError, match=r"no score column; expected one of .*found columns \['image', 'rating'\]"):
        read_labels(images / "labels.csv")
    m = read_labels(images / "labels.csv", score_key="rating")
    assert m.records[0].mos == 3.0
    with pytest.raises(ManifestError, match=r"column 'grade' not in header"):
        read_labels(images / "labels.csv", score_key="grade")


def test_csv_row_with_too_many_cells(images):
    (images / "labels.csv").write_text("image,mos\na.png,3\nb.png,2,7\n")
    with pytest.raises(ManifestError, match=r"labels\.csv:3: 3 cells but the header has 2 columns"):
        read_labels(images / "labels.csv")


def test_json_deqa_style_and_errors(images):
    entries = [{"image": "a.png", "gt_score": 4.2, "id": 1}, {"image": "sub/c.jpg", "gt_score": 1.5, "id": 2}]
    (images / "test.json").write_text(json.dumps(entries))
    m = read_labels(images / "test.json")
    assert [(r.image, r.mos) for r in m.records] == [("a.png", 4.2), ("sub/c.jpg", 1.5)]
    assert m.header.ignored_columns == ("id",)
    entries[1]["gt_score"] = "good"
    (images / "test.json").write_text(json.dumps({"files": entries}))
    with pytest.raises(ManifestError, match=r"test\.json\[1\]: column 'gt_score' is not a number: 'good'"):
        read_labels(images / "test.json")
    (images / "test.json").write_text("[{\"image\": \"a.png\",\n \"gt_score\": }]")
    with pytest.raises(ManifestError, match=r"test\.json:2: not JSON"):
        read_labels(images / "test.json")


def test_jsonl_names_the_line(images):
    (images / "l.jsonl").write_text('{"img_path": "a.png", "score": 3}\n\n{"img_path": "b.png"}\n')
    with pytest.raises(ManifestError, match=r"l\.jsonl:3: missing key 'score'"):
        read_labels(images / "l.jsonl")


def test_text_name_mos_std(images):
    (images / "l.txt").write_text("# name mos std\na.png 3.0 0.2\nb.png 4\n")
    m = read_labels(images / "l.txt")
    assert [(r.mos, r.std) for r in m.records] == [(3.0, 0.2), (4.0, None)]
    (images / "l.txt").write_text("a.png three\n")
    with pytest.raises(ManifestError, match=r"l\.txt:1: column 'mos' is not a number: 'three'"):
        read_labels(images / "l.txt")


def test_missing_image_in_generic_file(images):
    (images / "l.txt").write_text("a.png 3.0\nzzz.png 4\n")
    with pytest.raises(ManifestError, match=r"l\.txt:2: zzz\.png"):
        read_labels(images / "l.txt")
    assert read_labels(images / "l.txt", missing="skip").header.skipped == {"missing image": 1}


def test_folder_of_images(images):
    m = load_dataset(str(images))
    assert [r.image for r in m.records] == ["a.png", "b.png", "sub/c.jpg"]
    assert all(r.mos is None for r in m.records) and not m.has_mos
    assert m.image_path(m.records[2]) == images / "sub" / "c.jpg"


def test_unknown_format_and_missing_file(images):
    (images / "l.yaml").write_text("x")
    with pytest.raises(ValueError, match="fmt must be one of"):
        read_labels(images / "l.yaml")
    with pytest.raises(ManifestError, match="does not exist"):
        read_labels(images / "nope.csv")


def test_manifest_round_trip_relative_root(tmp_path):
    header = Header(name="x", higher_better=False, mos_range=(0.0, 1.0), root=".", skipped={"duplicate row": 2})
    records = [Record("a.png", mos=0.5, std=0.1, ref="r.png", dist_type="jpeg", level=2, group="r", split="test"),
               Record("b.png", mos=0.25)]
    path = Manifest(header, records).write_jsonl(tmp_path / "m" / "manifest.jsonl")
    back = read_manifest(path)
    assert back.records == records and back.header.n == 2 and back.header.root == str((tmp_path / "m").resolve())
    assert back.header.higher_better is False and back.header.skipped == {"duplicate row": 2}
    assert load_dataset("manifest", tmp_path / "m").records == records
    assert len(load_dataset("manifest", tmp_path / "m", subset="test")) == 1


@pytest.mark.parametrize("line, message", [
    ('{"image": "a.png", "mos": "3"}', r":2: 'mos' must be a number, got '3'"),
    ('{"image": "a.png", "level": 1.5}', r":2: 'level' must be an integer"),
    ('{"image": "a.png", "colour": 1}', r":2: unknown fields \['colour'\]"),
    ('{"mos": 1}', r":2: 'image' must be a non-empty string"),
    ('{"image": "a.png", "mos": NaN}', r":2: 'mos' must be finite"),
    ('[1, 2]', r":2: expected a JSON object"),
])
def test_manifest_rejects_bad_records(tmp_path, line, message):
    (tmp_path / "m.jsonl").write_text('{"header": {"name": "x"}}\n' + line + "\n")
    with pytest.raises(ManifestError, match=message):
        read_manifest(tmp_path / "m.jsonl")


def test_manifest_header_checks(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"image": "a.png"}\n')
    with pytest.raises(ManifestError, match=r":1: the first line must be"):
        read_manifest(tmp_path / "m.jsonl")
    (tmp_path / "m.jsonl").write_text('{"header": {"name": "x", "n": 3}}\n{"image": "a.png"}\n')
    with pytest.raises(ManifestError, match="header says n=3 but the file has 1 records"):
        read_manifest(tmp_path / "m.jsonl")
