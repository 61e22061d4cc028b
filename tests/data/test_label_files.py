"""Label files as users have them, each on a small file written here: cut or short rows, non-numeric
cells, UTF-8 / UTF-8 with BOM / UTF-16 with BOM, a blank line before the header, a web page saved as the label file,
and the CSIQ text variants. Every failure is a ManifestError naming the file and line, never a KeyError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evoquality.data import ManifestError, load_dataset, read_labels, read_manifest
from .test_datasets import _agiqa, _csiq, _img, _kadid, _koniq, _tid, _xlsx

ENCODINGS = {"utf-8": "utf-8", "utf-8-bom": "utf-8-sig", "utf-16-le-bom": "utf-16", "utf-16-be-bom": "utf-16-be-bom"}


def _encode(text: str, encoding: str) -> bytes:
    if encoding == "utf-16-be-bom":
        return b"\xfe\xff" + text.encode("utf-16-be")
    return text.encode(ENCODINGS[encoding])


def _reencode(path: Path, encoding: str) -> None:
    path.write_bytes(_encode(path.read_text(encoding="utf-8"), encoding))


def _cut_last_row(path: Path, keep: int) -> None:
    """Drop the tail of the file: a download or a copy-paste that stopped early."""
    text = path.read_text().rstrip("\n")
    path.write_text(text[: len(text) - keep] + "\n")


@pytest.mark.parametrize("layout, name, file", [(_koniq, "koniq10k", "koniq10k_distributions_sets.csv"),
                                                (_kadid, "kadid10k", "dmos.csv"), (_agiqa, "agiqa3k", "data.csv")])
def test_short_row_is_an_error_naming_the_line(tmp_path, layout, name, file):
    layout(tmp_path)
    lines = (tmp_path / file).read_text().splitlines()
    lines[2] = ",".join(lines[2].split(",")[:3])
    (tmp_path / file).write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=rf"{file}:3: 3 cells but the header has \d+ columns \(a cut or short row"):
        load_dataset(name, tmp_path)


def test_cut_last_row_is_never_misread(tmp_path):
    # AGIQA's last row "...,4.1,0.3,3.3,0.4" cut to "...,4.1,0.3,3": std_align's cell and more are missing.
    _agiqa(tmp_path)
    _cut_last_row(tmp_path / "data.csv", keep=5)
    with pytest.raises(ManifestError, match=r"data\.csv:4: 8 cells but the header has 9 columns.*'std_align'"):
        load_dataset("agiqa3k", tmp_path)
    # The generic reader: "img3.png,3.60083465,0.41" cut to "img3.png,3.6" must not read a MOS of 3.6.
    for n in (1, 2, 3):
        _img(tmp_path / f"img{n}.png")
    (tmp_path / "labels.csv").write_text("image,mos,std\nimg1.png,1.5,0.2\nimg2.png,2.25,0.3\nimg3.png,3.6\n")
    with pytest.raises(ManifestError, match=r"labels\.csv:4: 2 cells but the header has 3 columns"):
        read_labels(tmp_path / "labels.csv")


def test_trailing_delimiters_are_not_short_or_long_rows(tmp_path):
    for n in (1, 2):
        _img(tmp_path / f"img{n}.png")
    (tmp_path / "labels.csv").write_text("image,mos,\nimg1.png,1.5,\nimg2.png,2.5,,\n")
    assert [r.mos for r in read_labels(tmp_path / "labels.csv").records] == [1.5, 2.5]
    (tmp_path / "labels.csv").write_text("image,mos\nimg1.png,1.5,0.3\n")
    with pytest.raises(ManifestError, match=r"labels\.csv:2: 3 cells but the header has 2 columns"):
        read_labels(tmp_path / "labels.csv")


@pytest.mark.parametrize("layout, name, file, cell, column", [
    (_koniq, "koniq10k", "koniq10k_distributions_sets.csv", "63.3", "MOS"),
    (_kadid, "kadid10k", "dmos.csv", "0.869", "var"),
    (_agiqa, "agiqa3k", "data.csv", "0.4", "std_quality"),
    (_tid, "tid2013", "mos_with_names.txt", "5.56757", "MOS")])
def test_non_numeric_cell_names_file_line_and_column(tmp_path, layout, name, file, cell, column):
    layout(tmp_path)
    text = (tmp_path / file).read_text()
    (tmp_path / file).write_text(text.replace(cell, "#N/A", 1))
    with pytest.raises(ManifestError, match=rf"{file}:\d: column '{column}' is not a number: '#N/A'"):
        load_dataset(name, tmp_path)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("layout, name, file", [(_koniq, "koniq10k", "koniq10k_distributions_sets.csv"),
                                                (_agiqa, "agiqa3k", "data.csv"), (_tid, "tid2013",
                                                                                  "mos_with_names.txt")])
def test_standard_sets_read_alike_in_every_encoding(tmp_path, encoding, layout, name, file):
    layout(tmp_path / "plain")
    layout(tmp_path / "enc")
    _reencode(tmp_path / "enc" / file, encoding)
    assert load_dataset(name, tmp_path / "enc").records == load_dataset(name, tmp_path / "plain").records


def _generic_files(root: Path) -> dict[str, str]:
    for n in (1, 2):
        _img(root / f"a{n}.png")
    rows = [("a1.png", 1.5, 0.25), ("a2.png", 3.75, 0.5)]
    return {
        "labels.csv": "image,mos,std\n" + "".join(f"{i},{m},{s}\n" for i, m, s in rows),
        "labels.txt": "".join(f"{i} {m} {s}\n" for i, m, s in rows),
        "labels.json": json.dumps([{"image": i, "gt_score": m, "std": s} for i, m, s in rows]),
        "labels.jsonl": "".join(json.dumps({"image": i, "mos": m, "std": s}) + "\n" for i, m, s in rows),
    }


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_generic_formats_read_alike_in_every_encoding(tmp_path, encoding):
    for file, text in _generic_files(tmp_path).items():
        (tmp_path / file).write_bytes(_encode(text, encoding))
        m = read_labels(tmp_path / file)
        assert [(r.image, r.mos, r.std) for r in m.records] == [("a1.png", 1.5, 0.25), ("a2.png", 3.75, 0.5)], file
    manifest = read_labels(tmp_path / "labels.csv").write_jsonl(tmp_path / "m.jsonl")
    _reencode(manifest, encoding)
    assert len(read_manifest(manifest)) == 2


def test_undecodable_text_names_file_and_line(tmp_path):
    _tid(tmp_path)
    (tmp_path / "mos_with_names.txt").write_bytes(b"5.5 i01_01_1.bmp\n5.6 caf\xe9.bmp\n")
    with pytest.raises(ManifestError, match=r"mos_with_names\.txt:2: not valid UTF-8 text.*save it as UTF-8"):
        load_dataset("tid2013", tmp_path)
    (tmp_path / "mos_with_names.txt").write_bytes("5.5 i01_01_1.bmp\n".encode("utf-16-le"))
    with pytest.raises(ManifestError, match=r"mos_with_names\.txt:1: .*looks like UTF-16 without a byte-order mark"):
        load_dataset("tid2013", tmp_path)


def test_blank_lines_before_the_header(tmp_path):
    _kadid(tmp_path)
    text = (tmp_path / "dmos.csv").read_text()
    (tmp_path / "dmos.csv").write_text("\n\n" + text.replace("4.33", "x"))
    with pytest.raises(ManifestError, match=r"dmos\.csv:5: column 'dmos' is not a number"):  # lines still count
        load_dataset("kadid10k", tmp_path)
    (tmp_path / "dmos.csv").write_text("\n\n" + text)
    assert len(load_dataset("kadid10k", tmp_path)) == 3
    (tmp_path / "dmos.csv").write_text("\n \n")
    with pytest.raises(ManifestError, match=r"dmos\.csv:1: empty file, expected a header row"):
        load_dataset("kadid10k", tmp_path)


def test_html_page_saved_as_the_label_file(tmp_path):
    _agiqa(tmp_path)
    (tmp_path / "data.csv").write_text("\n<!DOCTYPE html>\n<html lang=\"en\"><head><title>AGIQA-3k-Database/data.csv"
                                       "</title></head><body>...</body></html>\n")
    with pytest.raises(ManifestError, match=r"data\.csv:1: an HTML page, not a label file.*raw file"):
        load_dataset("agiqa3k", tmp_path)
    (tmp_path / "list.json").write_text("<html><body>404</body></html>")
    with pytest.raises(ManifestError, match=r"list\.json:1: an HTML page"):
        read_labels(tmp_path / "list.json")


def _csiq_images(root: Path) -> None:
    _csiq(root)
    (root / "csiq.DMOS.xlsx").unlink()


def test_csiq_hyperiqa_label_file(tmp_path):
    _csiq_images(tmp_path)
    (tmp_path / "csiq_label.txt").write_text("1600.AWGN.1.png 0.061989\n1600.AWGN.2.png 0.206245\n"
                                             "aerial_city.contrast.3.png 0.3107\n")
    m = load_dataset("csiq", tmp_path)
    assert m.header.source.endswith("csiq_label.txt") and not m.header.higher_better
    assert [(r.dist_type, r.level, r.mos, r.std) for r in m.records] == [
        ("noise", 1, 0.061989, None), ("noise", 2, 0.206245, None), ("contrast", 3, 0.3107, None)]


@pytest.mark.parametrize("header", [False, True])
def test_csiq_six_column_text(tmp_path, header):
    _csiq_images(tmp_path)
    rows = ["1600\t1\tnoise\t1\t0.061\t0.062", "1600\t1\tnoise\t2\t0.097\t0.206",
            "aerial_city\t5\tcontrast\t3\t0.05\t0.311"]
    if header:
        rows.insert(0, "image\tdst_idx\tdst_type\tdst_lev\tdmos_std\tdmos")
    (tmp_path / "csiq_dmos.txt").write_text("\r\n".join(rows) + "\r\n")
    m = load_dataset("csiq", tmp_path)
    assert [(Path(r.image).name, r.mos, r.std) for r in m.records] == [
        ("1600.AWGN.1.png", 0.062, 0.061), ("1600.AWGN.2.png", 0.206, 0.097), ("aerial_city.contrast.3.png", 0.311,
                                                                               0.05)]
    (tmp_path / "csiq_dmos.txt").write_text("1600\t1\tnoise\t1\t0.061\n")
    with pytest.raises(ManifestError, match=r"csiq_dmos\.txt:1: expected 2 fields \(name dmos\) or 6"):
        load_dataset("csiq", tmp_path)
    (tmp_path / "csiq_dmos.txt").write_text("1600\t1\tsharpen\t1\t0.061\t0.2\n")
    with pytest.raises(ManifestError, match=r"csiq_dmos\.txt:1: unknown dst_type 'sharpen'"):
        load_dataset("csiq", tmp_path)


def test_xlsx_missing_cells_are_errors_not_key_errors(tmp_path):
    _csiq_images(tmp_path)
    _xlsx(tmp_path / "csiq.DMOS.xlsx", [("image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos"),
                                        (1600, 1, "noise", 1, 0.02, 0.062), (1600, 1, "noise", 2)])
    with pytest.raises(ManifestError, match=r"csiq\.DMOS\.xlsx\[all_by_image\]:3: column 'dmos' is not a number"):
        load_dataset("csiq", tmp_path)
