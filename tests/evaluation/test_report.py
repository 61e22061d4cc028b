"""Markdown table layout and the matplotlib figures: what the axes hold, and the PNG + PDF files."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from evoquality.evaluation import report


def test_scatter_figure_holds_the_points_curve_and_title():
    x, y = [1.0, 2.0, np.nan, 3.0, 4.0], [3.0, 4.0, 5.0, np.nan, 6.0]
    fig = report.scatter_figure(x, y, title="set (test)\nSRCC 0.500", xlabel="prediction", ylabel="MOS",
                                curve=lambda v: 2.0 * v, curve_label="fit")
    (ax,) = fig.axes
    (points,) = ax.collections
    np.testing.assert_array_equal(points.get_offsets(), [[1.0, 3.0], [2.0, 4.0], [4.0, 6.0]])  # NaN pairs dropped
    (line,) = ax.lines
    assert (line.get_xdata()[0], line.get_xdata()[-1]) == (1.0, 4.0)  # the curve spans the plotted points
    np.testing.assert_allclose(line.get_ydata(), 2.0 * line.get_xdata())
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("set (test)\nSRCC 0.500", "prediction", "MOS")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["fit"]


def test_scatter_figure_groups_empty_and_errors():
    fig = report.scatter_figure([0.0, 1.0, 2.0, np.nan], [0, 1, 2, 3], title="t", xlabel="x", ylabel="y",
                                groups=["blur", "noise", "blur", "jpeg"])
    (ax,) = fig.axes
    # one colour per group in order of appearance; a group whose points are all dropped gets no entry
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["blur", "noise"]
    np.testing.assert_array_equal(ax.collections[0].get_offsets(), [[0.0, 0.0], [2.0, 2.0]])
    empty = report.scatter_figure([np.nan], [1.0], title="t", xlabel="x", ylabel="y", curve=lambda v: v)
    assert [t.get_text() for t in empty.axes[0].texts] == ["no scored items"] and not empty.axes[0].lines
    with pytest.raises(ValueError, match="x and y must be 1-D of equal length"):
        report.scatter_figure([1.0, 2.0], [1.0], title="t", xlabel="x", ylabel="y")
    with pytest.raises(ValueError, match=r"groups must have one entry per point \(2\), got 1"):
        report.scatter_figure([1.0, 2.0], [1.0, 2.0], title="t", xlabel="x", ylabel="y", groups=["a"])


def test_round_axis_has_one_integer_tick_per_round():
    ax = report.new_figure().add_subplot()
    ax.plot([0, 1, 2], [0.1, 0.3, 0.2])
    report.round_axis(ax, 3)
    assert list(ax.get_xticks()) == [0, 1, 2] and ax.get_xlabel() == "round (0 = base model)"
    with pytest.raises(ValueError, match="n_rounds must be >= 1, got 0"):
        report.round_axis(ax, 0)


def test_save_figure_writes_png_and_pdf_without_stamps(tmp_path):
    fig = report.scatter_figure([1.0, 2.0], [3.0, 4.0], title="t", xlabel="x", ylabel="y")
    png, pdf = report.save_figure(fig, tmp_path / "sub" / "scatter_a.png")
    assert (png.name, pdf.name) == ("scatter_a.png", "scatter_a.pdf")
    with Image.open(png) as im:
        assert (im.format, im.size) == ("PNG", (560, 420))
        assert "Software" not in im.info
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert b"/FontFile2" in data and b"/Type3" not in data  # TrueType fonts embedded, as publishers require
    assert b"/CreationDate" not in data  # no timestamp: a redrawn figure is the same file


def test_figures_import_matplotlib_lazily_and_never_pyplot(tmp_path):
    draw = f"r.save_figure(r.scatter_figure([1.0], [2.0], title='t', xlabel='x', ylabel='y'), {str(tmp_path / 'a')!r})"
    code = (f"import sys, evoquality.evaluation.report as r; before = 'matplotlib' in sys.modules; {draw}; "
            "print(before, 'matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


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
