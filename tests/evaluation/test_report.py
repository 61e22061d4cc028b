"""Markdown table layout and the Pillow scatter plot."""

import numpy as np
import pytest
from PIL import Image

from evoquality.evaluation import report


def test_scatter_png_draws_points_and_handles_empty(tmp_path):
    path = report.scatter_png(tmp_path / "a.png", [1.0, 2.0, np.nan], [3.0, 4.0, 5.0], title="t", xlabel="x",
                              ylabel="y")
    with Image.open(path) as im:
        pixels = np.asarray(im.convert("RGB"))
    assert im.size == (560, 420)
    assert ((pixels == [0x1F, 0x77, 0xB4]).all(axis=2)).sum() > 20  # two filled points in the first colour
    empty = report.scatter_png(tmp_path / "b.png", [np.nan], [1.0], title="t", xlabel="x", ylabel="y")
    assert empty.is_file()
    with pytest.raises(ValueError, match="x and y must be 1-D of equal length"):
        report.scatter_png(tmp_path / "c.png", [1.0, 2.0], [1.0], title="t", xlabel="x", ylabel="y")


def test_ticks_are_round_and_inside():
    assert report._ticks(0.0, 1.0) == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert report._ticks(13.0, 97.0) == pytest.approx([20.0, 40.0, 60.0, 80.0])


def test_markdown_rows_wavg_and_notes():
    ds = [{"name": "koniq10k", "subset": "test", "n": 3, "has_mos": True, "has_levels": False,
           "skipped": {"missing image": 2}, "notes": ["psnr: no reference images in this set"],
           "rows": {"model greedy": {"n_scored": 2, "n_failed": 1, "plcc": 0.5, "plcc_logistic": float("nan"),
                                     "logistic_fit": "too few items", "srcc": 0.25, "krcc": 0.125, "pairwise": 0.75,
                                     "ci95": {"plcc": [0.1, 0.9], "srcc": None},
                                     "parse_failure_rate": {"greedy": 1 / 3}}}}]
    md = report.markdown_tables(ds, [{"scorer": "model greedy", "n": 3, "n_sets": 1, "plcc": 0.5}])
    lines = md.splitlines()
    assert lines[0] == "| dataset | subset | n | scorer | PLCC | PLCC (logistic) | SRCC | KRCC | pairwise | failed |"
    assert lines[2] == ("| koniq10k | test | 2 | model greedy | 0.500 [0.100, 0.900] | — | 0.250 | 0.125 | 0.750 "
                        "| 1 (parse fail 33.3%) |")
    assert lines[3] == "| WAVG | 1 sets | 3 | model greedy | 0.500 | — | — | — | — |  |"
    assert "Logistic fit failed (PLCC (logistic) left blank): koniq10k/model greedy: too few items" in md
    assert "Rows skipped while reading: koniq10k: missing image 2" in md
    assert "Not computed: koniq10k: psnr: no reference images in this set" in md
