"""Each standard-set reader on a small fixture written in that set's native format (CSV, XLSX, .mat, text)."""

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from evoquality.data import DATASETS, ManifestError, load_dataset, read_manifest


def _img(path: Path, value: int = 128, size=(20, 20)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)


def _xlsx(path: Path, rows, title_rows=()):
    import openpyxl  # a test dependency (SPAQ and CSIQ ship XLSX labels); only the XLSX tests need it

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "all_by_image"
    for row in [*title_rows, *rows]:
        sheet.append(list(row))
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)


def _koniq(root: Path):
    root.mkdir(parents=True, exist_ok=True)
    (root / "koniq10k_distributions_sets.csv").write_text(
        "image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,set\n"
        "10004473376.jpg,0,0,25,73,7,105,63.3,8.1,training\n"
        "10007357496.jpg,0,3,45,47,7,102,58.5,9.8,test\n"
        "10007903636.jpg,1,0,20,73,9,103,65.0,7.7,test\n"
    )
    for name in ("10004473376.jpg", "10007357496.jpg", "10007903636.jpg"):
        _img(root / "1024x768" / name)


def _spaq(root: Path):
    _xlsx(root / "Annotations" / "MOS and Image attribute scores.xlsx",
          [("Image name", "MOS", "Brightness", "Colorfulness"), ("00001.png", 42.5, 50, 40),
           ("00002.png", 72.0, 61, 55), ("00003.png", 10.25, 20, 5)])
    for name in ("00001.png", "00002.png", "00003.png"):
        _img(root / "TestImage" / name)


def _livec(root: Path):
    names = ["t1.bmp", "t2.bmp", "3.bmp", "4.bmp", "5.bmp"]
    cells = np.empty((len(names), 1), dtype=object)
    for i, n in enumerate(names):
        cells[i, 0] = np.array([n])
    (root / "Data").mkdir(parents=True)
    scipy.io.savemat(root / "Data" / "AllImages_release.mat", {"AllImages_release": cells})
    mos, std = np.array([[63.9, 25.3, 48.9, 72.1, 3.4]]), np.array([[18.3, 13.6, 18.1, 15.0, 9.9]])
    scipy.io.savemat(root / "Data" / "AllMOS_release.mat", {"AllMOS_release": mos})
    scipy.io.savemat(root / "Data" / "AllStdDev_release.mat", {"AllStdDev_release": std})
    for n in names[:2]:
        _img(root / "Images" / "trainingImages" / n)
    for n in names[2:]:
        _img(root / "Images" / n)


def _kadid(root: Path):
    root.mkdir(parents=True, exist_ok=True)
    (root / "dmos.csv").write_text(
        "dist_img,ref_img,dmos,var\nI01_01_01.png,I01.png,4.57,0.496\nI01_01_02.png,I01.png,4.33,0.869\n"
        "I02_07_05.png,I02.png,1.25,0.25\n"
    )
    for n in ("I01_01_01.png", "I01_01_02.png", "I02_07_05.png", "I01.png", "I02.png"):
        _img(root / "images" / n)


def _pipal(root: Path):
    (root / "Train_Label").mkdir(parents=True)
    (root / "Train_Label" / "A0001.txt").write_text("A0001_00_00.bmp,1502.5\nA0001_01_03.bmp,1320.25\n")
    (root / "Train_Label" / "A0002.txt").write_text("A0002_10_01.bmp,1611.0\n")
    for n in ("A0001_00_00.bmp", "A0001_01_03.bmp", "A0002_10_01.bmp"):
        _img(root / "Train_Dist" / n)
    for n in ("A0001.bmp", "A0002.bmp"):
        _img(root / "Train_Ref" / n)


def _agiqa(root: Path):
    root.mkdir(parents=True, exist_ok=True)
    (root / "data.csv").write_text(
        "name,prompt,adj1,adj2,style,mos_quality,std_quality,mos_align,std_align\n"
        "AttnGAN_normal_000.jpg,a dog,,,,1.2,0.5,2.1,0.6\n"
        "DALLE2_normal_000.jpg,a dog,,,,3.6,0.4,3.0,0.5\n"
        "midjourney_normal_001.jpg,a cat,baroque,,sketch,4.1,0.3,3.3,0.4\n"
    )
    for n in ("AttnGAN_normal_000.jpg", "DALLE2_normal_000.jpg", "midjourney_normal_001.jpg"):
        _img(root / "AGIQA-3K" / n)


def _csiq(root: Path):
    _xlsx(root / "csiq.DMOS.xlsx",
          [("image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos"), (1600, 1, "noise", 1, 0.02, 0.062),
           (1600, 1, "noise", 2, 0.03, 0.156), ("aerial_city", 5, "contrast", 3, 0.05, 0.311)],
          title_rows=[("CSIQ DMOS",), ()])
    _img(root / "dst_imgs" / "awgn" / "1600.AWGN.1.png")
    _img(root / "dst_imgs" / "awgn" / "1600.AWGN.2.png")
    _img(root / "dst_imgs" / "contrast" / "aerial_city.contrast.3.png")
    _img(root / "src_imgs" / "1600.png")
    _img(root / "src_imgs" / "aerial_city.png")


def _tid(root: Path):
    root.mkdir(parents=True, exist_ok=True)
    (root / "mos_with_names.txt").write_text("5.51429 i01_01_1.bmp\n5.56757 i01_01_2.bmp\n4.94444 I02_05_3.BMP\n")
    for n in ("i01_01_1.bmp", "i01_01_2.bmp", "i02_05_3.bmp"):  # case differs from the label file: resolved anyway
        _img(root / "distorted_images" / n)
    for n in ("I01.BMP", "i02.bmp"):
        _img(root / "reference_images" / n)


LAYOUTS = {"koniq10k": (_koniq, 3, (0.0, 100.0)), "spaq": (_spaq, 3, (0.0, 100.0)), "livec": (_livec, 3, (0.0, 100.0)),
           "kadid10k": (_kadid, 3, (1.0, 5.0)), "pipal": (_pipal, 3, None), "agiqa3k": (_agiqa, 3, (0.0, 5.0)),
           "csiq": (_csiq, 3, (0.0, 1.0)), "tid2013": (_tid, 3, (0.0, 9.0))}


def test_every_registered_dataset_has_a_fixture():
    assert set(LAYOUTS) == set(DATASETS)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_reader_reads_native_fixture(name, tmp_path):
    make, n, mos_range = LAYOUTS[name]
    make(tmp_path)
    m = load_dataset(name, tmp_path)
    assert m.header.name == name and m.header.n == len(m) == n
    assert m.header.mos_range == mos_range
    assert m.header.higher_better is (name != "csiq")
    for r in m.records:
        assert m.image_path(r).is_file()
        if r.ref is not None:
            assert m.image_path(r.ref).is_file()
    # round trip through the JSONL manifest
    back = read_manifest(m.write_jsonl(tmp_path / "out" / "m.jsonl"))
    assert back.records == m.records and back.header == m.header


def test_reader_field_values(tmp_path):
    _kadid(tmp_path / "kadid")
    r = load_dataset("kadid", tmp_path / "kadid").records[1]
    assert (r.image, r.mos, r.ref, r.dist_type, r.level, r.group) == (
        "images/I01_01_02.png", 4.33, "images/I01.png", "01", 2, "I01.png")
    assert r.std == pytest.approx(np.sqrt(0.869), rel=1e-12)

    _tid(tmp_path / "tid")
    t = load_dataset("tid2013", tmp_path / "tid").records[2]
    assert (t.image, t.ref, t.dist_type, t.level) == (
        "distorted_images/i02_05_3.bmp", "reference_images/i02.bmp", "05", 3)

    _csiq(tmp_path / "csiq")
    c = load_dataset("csiq", tmp_path / "csiq")
    assert [(r.image, r.dist_type, r.level, r.mos) for r in c.records] == [
        ("dst_imgs/awgn/1600.AWGN.1.png", "noise", 1, 0.062), ("dst_imgs/awgn/1600.AWGN.2.png", "noise", 2, 0.156),
        ("dst_imgs/contrast/aerial_city.contrast.3.png", "contrast", 3, 0.311)]
    assert c.records[0].std == 0.02 and c.records[0].ref == "src_imgs/1600.png"
    assert len(load_dataset("csiq", tmp_path / "csiq", subset="no_contrast")) == 2

    _koniq(tmp_path / "koniq")
    k = load_dataset("koniq", tmp_path / "koniq")
    # SD is on the 1-5 rating scale, the _sets file's MOS on 0-100: no std rather than one on the wrong scale.
    assert [r.split for r in k.records] == ["training", "test", "test"] and k.records[0].std is None
    assert set(k.header.ignored_columns) == {"c1", "c2", "c3", "c4", "c5", "c_total", "SD"}
    kt = load_dataset("koniq", tmp_path / "koniq", subset="test")
    assert len(kt) == 2 and kt.header.subset == "test" and kt.header.skipped == {"outside subset 'test'": 1}

    _livec(tmp_path / "livec")
    lc = load_dataset("livec", tmp_path / "livec")  # default subset drops the 7 (here 2) training images
    assert [r.image for r in lc.records] == ["Images/3.bmp", "Images/4.bmp", "Images/5.bmp"]
    assert lc.records[0].mos == 48.9 and lc.records[0].std == 18.1 and lc.header.subset == "test"
    assert len(load_dataset("livec", tmp_path / "livec", subset="all")) == 5

    _pipal(tmp_path / "pipal")
    p = load_dataset("pipal", tmp_path / "pipal").records[1]
    assert (p.mos, p.ref, p.dist_type, p.group) == (1320.25, "Train_Ref/A0001.bmp", "01", "A0001")

    _agiqa(tmp_path / "agiqa")
    a = load_dataset("agiqa3k", tmp_path / "agiqa")
    assert [r.group for r in a.records] == ["a dog", "a dog", "a cat"] and a.records[2].std == 0.3


def test_non_numeric_score_names_the_line(tmp_path):
    _kadid(tmp_path)
    text = (tmp_path / "dmos.csv").read_text().replace("4.33", "n/a")
    (tmp_path / "dmos.csv").write_text(text)
    with pytest.raises(ManifestError, match=r"dmos\.csv:3: column 'dmos' is not a number: 'n/a'"):
        load_dataset("kadid10k", tmp_path)


def test_xlsx_non_numeric_names_the_row(tmp_path):
    import openpyxl

    _spaq(tmp_path)
    book = openpyxl.load_workbook(tmp_path / "Annotations" / "MOS and Image attribute scores.xlsx")
    book.active["B3"] = "high"
    book.save(tmp_path / "Annotations" / "MOS and Image attribute scores.xlsx")
    with pytest.raises(ManifestError, match=r"\]:3: column 'MOS' is not a number: 'high'"):
        load_dataset("spaq", tmp_path)


def test_text_wrong_field_count_names_the_line(tmp_path):
    _tid(tmp_path)
    (tmp_path / "mos_with_names.txt").write_text("5.5 i01_01_1.bmp\n\n5.5 i01_01_2.bmp extra\n")
    with pytest.raises(ManifestError, match=r"mos_with_names\.txt:3: expected 2 fields, got 3"):
        load_dataset("tid2013", tmp_path)


def test_duplicates_counted_conflicts_rejected(tmp_path):
    _kadid(tmp_path)
    csv = tmp_path / "dmos.csv"
    csv.write_text(csv.read_text() + "I01_01_01.png,I01.png,4.57,0.496\n")
    m = load_dataset("kadid10k", tmp_path)
    assert len(m) == 3 and m.header.skipped == {"duplicate row": 1}
    csv.write_text(csv.read_text() + "I01_01_01.png,I01.png,3.0,0.496\n")
    with pytest.raises(ManifestError, match=r"dmos\.csv:6: image 'I01_01_01.png' is listed again with different "
                                            r"values \(first at .*dmos\.csv:2"):
        load_dataset("kadid10k", tmp_path)


def test_missing_images_error_or_counted_skip(tmp_path):
    _koniq(tmp_path)
    (tmp_path / "1024x768" / "10007357496.jpg").unlink()
    with pytest.raises(ManifestError, match=r"1 image\(s\) .*koniq10k_distributions_sets\.csv:3: 10007357496\.jpg"):
        load_dataset("koniq10k", tmp_path)
    m = load_dataset("koniq10k", tmp_path, missing="skip")
    assert len(m) == 2 and m.header.skipped == {"missing image": 1}


def test_missing_reference_is_cleared_and_counted(tmp_path):
    _kadid(tmp_path)
    (tmp_path / "images" / "I02.png").unlink()
    m = load_dataset("kadid10k", tmp_path)
    assert m.records[2].ref is None and m.header.skipped == {"reference not found": 1}


def test_missing_column_and_out_of_range(tmp_path):
    _agiqa(tmp_path)
    (tmp_path / "data.csv").write_text("name,prompt,quality\nAttnGAN_normal_000.jpg,a dog,1.0\n")
    with pytest.raises(ManifestError, match=r"no mos_quality column; expected one of \['mos_quality'\], found "
                                            r"columns \['name', 'prompt', 'quality'\]"):
        load_dataset("agiqa3k", tmp_path)
    (tmp_path / "data.csv").write_text("name,mos_quality\nAttnGAN_normal_000.jpg,7.5\n")
    with pytest.raises(ManifestError, match=r"data\.csv:2: score 7\.5 is outside agiqa3k's range \[0\.0, 5\.0\]"):
        load_dataset("agiqa3k", tmp_path)


def test_bad_names_and_arguments(tmp_path):
    _kadid(tmp_path)
    (tmp_path / "dmos.csv").write_text("dist_img,ref_img,dmos,var\nfoo.png,I01.png,4.0,0.1\n")
    with pytest.raises(ManifestError, match=r"dmos\.csv:2: dist_img 'foo.png' is not named like I01_01_01.png"):
        load_dataset("kadid10k", tmp_path)
    with pytest.raises(ValueError, match="subset must be 'all' or one of"):
        load_dataset("kadid10k", tmp_path, subset="test")
    with pytest.raises(ManifestError, match="no label file found"):
        load_dataset("spaq", tmp_path)
    with pytest.raises(ValueError, match="root is required"):
        load_dataset("kadid10k")
    with pytest.raises(ValueError, match="missing must be one of"):
        load_dataset("kadid10k", tmp_path, missing="ignore")


def test_mat_file_with_wrong_variable(tmp_path):
    _livec(tmp_path)
    scipy.io.savemat(tmp_path / "Data" / "AllMOS_release.mat", {"mos": np.array([[1.0, 2.0]])})
    with pytest.raises(ManifestError,
                       match=r"none of the variables \['AllMOS_release'\] found; the file has \['mos'\]"):
        load_dataset("livec", tmp_path)
    scipy.io.savemat(tmp_path / "Data" / "AllMOS_release.mat", {"AllMOS_release": np.array([[1.0, 2.0]])})
    with pytest.raises(ManifestError, match="AllImages_release has 5 entries, AllMOS_release 2"):
        load_dataset("livec", tmp_path)
