"""Human-readable outputs of an evaluation: markdown tables and figures (a scatter plot per dataset; the helpers
behind every figure of a run).

Tables state the subset and n beside every number (papers disagree on subsets, e.g. CSIQ 750 vs 866). Figures are
matplotlib Figures on the headless Agg canvas, written as PNG (screens) and PDF (papers) side by side; matplotlib is
imported only when a figure is drawn, so `import evoquality` stays light.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

MOS_COLUMNS = (("plcc", "PLCC"), ("plcc_logistic", "PLCC (logistic)"), ("srcc", "SRCC"), ("krcc", "KRCC"),
               ("pairwise", "pairwise"))
SYNTHETIC_COLUMNS = (("l_test", "L-test (SRCC)"), ("p_test", "P-test (pairwise)"), ("d_test", "D-test"),
                     ("auc", "D AUC"))


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _ci(row: dict, key: str) -> str:
    ci = (row.get("ci95") or {}).get(key)
    return f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""


def _failed(scorer: str, row: dict) -> str:
    """Items without a score, and for model rows the parse-failure rate of the answers behind that row."""
    text = str(row.get("n_failed", 0))
    rates = row.get("parse_failure_rate") or {}
    rate = rates.get("sampled" if "mean@" in scorer else "greedy")
    if rate is not None and not (isinstance(rate, float) and math.isnan(rate)):
        text += f" (parse fail {100 * rate:.1f}%)"
    return text


def markdown_tables(datasets: Sequence[dict], wavg_rows: Sequence[dict]) -> str:
    """datasets: the per-dataset entries of results.json ({"name", "subset", "n", "rows": {scorer: metrics}}).
    wavg_rows: [{"scorer", "n", "n_sets", metric: value}]. Returns markdown with a MOS table and, when present,
    a synthetic table; every scorer's row (model and reference yardsticks) sits under its dataset."""
    lines: list[str] = []
    # Every scorer row of a set is printed, also one without a single score (its metrics show as "—"): a model
    # that failed to parse anything must be visible, not dropped from the table.
    mos = [d for d in datasets if d["has_mos"]]
    syn = [d for d in datasets if not d["has_mos"] and d["has_levels"]]
    if mos:
        head = ["dataset", "subset", "n", "scorer", *(label for _, label in MOS_COLUMNS), "failed"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for d in mos:
            for scorer, r in d["rows"].items():
                cells = [d["name"], d["subset"], str(r.get("n_scored", d["n"])), scorer]
                cells += [_fmt(r.get(k)) + (_ci(r, k) if k in ("plcc", "srcc") else "") for k, _ in MOS_COLUMNS]
                cells.append(_failed(scorer, r))
                lines.append("| " + " | ".join(cells) + " |")
        for w in wavg_rows:
            cells = ["WAVG", f"{w['n_sets']} sets", str(w["n"]), w["scorer"]]
            cells += [_fmt(w.get(k)) for k, _ in MOS_COLUMNS] + [""]
            lines.append("| " + " | ".join(cells) + " |")
        fails = [f"{d['name']}/{s}: {r['logistic_fit']}" for d in mos for s, r in d["rows"].items()
                 if r.get("logistic_fit") not in (None, "converged")]
        if fails:
            lines += ["", "Logistic fit failed (PLCC (logistic) left blank): " + "; ".join(fails)]
    if syn:
        if lines:
            lines.append("")
        head = ["dataset", "subset", "n", "scorer", *(label for _, label in SYNTHETIC_COLUMNS), "failed"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for d in syn:
            for scorer, r in d["rows"].items():
                cells = [d["name"], d["subset"], str(r.get("n_scored", d["n"])), scorer]
                cells += [_fmt(r.get(k)) for k, _ in SYNTHETIC_COLUMNS] + [_failed(scorer, r)]
                lines.append("| " + " | ".join(cells) + " |")
    skipped = [f"{d['name']}: " + ", ".join(f"{k} {v}" for k, v in d["skipped"].items())
               for d in datasets if d.get("skipped")]
    if skipped:
        lines += ["", "Rows skipped while reading: " + "; ".join(skipped)]
    warned = [f"{d['name']} / {scorer}: {r['decode_warnings']}" for d in datasets
              for scorer, r in d.get("rows", {}).items() if r.get("decode_warnings")]
    if warned:
        lines += ["", "Images scored although their decoder warned (recovered data): " + "; ".join(warned)]
    notes = [f"{d['name']}: {note}" for d in datasets for note in d.get("notes", ())]
    if notes:
        lines += ["", "Not computed: " + "; ".join(notes)]
    return "\n".join(lines) + "\n"


# --- figures ------------------------------------------------------------------------------------------------------

FIGSIZE = (5.6, 4.2)  # inches; the PDF is vector, the PNG is FIGSIZE x PNG_DPI = 560 x 420 px
PNG_DPI = 100
FIGURE_SUFFIXES = (".png", ".pdf")
# No creation date or software stamp: redrawing the same data writes the same bytes (figures are committed).
_METADATA = {".png": {"Software": None}, ".pdf": {"CreationDate": None}}


def new_figure(figsize=FIGSIZE):
    """A matplotlib Figure on the Agg canvas, with constrained layout. pyplot is never imported: its global figure
    registry would keep every figure alive, and its backend selection may pick a GUI toolkit on a workstation."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path) -> list[Path]:
    """Write `fig` as `path` with each of FIGURE_SUFFIXES (its own suffix replaced). Returns the paths, PNG first."""
    import matplotlib

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    # TrueType (Type 42) fonts in the PDF: publishers reject the default Type 3 fonts.
    with matplotlib.rc_context({"pdf.fonttype": 42}):
        for suffix in FIGURE_SUFFIXES:
            target = path.with_suffix(suffix)
            fig.savefig(target, dpi=PNG_DPI, metadata=_METADATA[suffix])
            written.append(target)
    return written


def round_axis(ax, n_rounds: int) -> None:
    """x axis of a per-round figure: one integer tick per round 0 .. n_rounds - 1 (round 0 = the base model)."""
    if n_rounds < 1:
        raise ValueError(f"n_rounds must be >= 1, got {n_rounds}")
    ax.set_xticks(range(n_rounds))
    ax.set_xlim(-0.3, n_rounds - 0.7)
    ax.set_xlabel("round (0 = base model)")


def scatter_figure(x, y, *, title: str, xlabel: str, ylabel: str, groups: Optional[Sequence] = None,
                   curve: Optional[Callable[[np.ndarray], np.ndarray]] = None, curve_label: str = ""):
    """Scatter plot of y against x (both (N,); a pair with a NaN is dropped), one colour per value of `groups`,
    with `curve` (x -> y, e.g. the fitted logistic) drawn over the range of x."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length, got {x.shape} and {y.shape}")
    if groups is not None and len(groups) != len(x):
        raise ValueError(f"groups must have one entry per point ({len(x)}), got {len(groups)}")
    keep = np.isfinite(x) & np.isfinite(y)
    fig = new_figure()
    ax = fig.add_subplot()
    if groups is None:
        ax.scatter(x[keep], y[keep], s=12, alpha=0.7, linewidths=0)
    else:
        labels = np.asarray([str(g) for g in groups], dtype=object)
        for g in dict.fromkeys(labels[keep]):
            chosen = keep & (labels == g)
            ax.scatter(x[chosen], y[chosen], s=12, alpha=0.7, linewidths=0, label=g)
    if curve is not None and keep.any():
        grid = np.linspace(x[keep].min(), x[keep].max(), 200)
        ax.plot(grid, curve(grid), color="black", linewidth=1.5, label=curve_label)
    if not keep.any():
        ax.text(0.5, 0.5, "no scored items", transform=ax.transAxes, ha="center", va="center")
    ax.set_title(title, fontsize="medium")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[1]:
        ax.legend(fontsize="small", loc="best")
    return fig
