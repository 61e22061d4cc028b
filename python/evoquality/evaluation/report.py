"""Human-readable outputs of an evaluation: markdown tables and a scatter plot per dataset.

Tables state the subset and n beside every number (papers disagree on subsets, e.g. CSIQ 750 vs 866). The scatter
plot is drawn with Pillow's ImageDraw, so plotting adds no dependency (matplotlib is not required).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

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


# --- scatter plot with Pillow ------------------------------------------------------------------------------------

_W, _H, _L, _R, _T, _B = 560, 420, 70, 20, 40, 55  # canvas and margins (px)


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if step * m >= raw)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


def scatter_png(path, x, y, *, title: str, xlabel: str, ylabel: str, groups: Optional[Sequence] = None) -> Path:
    """Write a scatter plot of y against x (both (N,), NaNs dropped) to `path` (PNG). Colours follow `groups`."""
    from PIL import Image, ImageDraw, ImageFont

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length, got {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    labels = np.asarray(groups, dtype=object)[keep] if groups is not None else None
    x, y = x[keep], y[keep]
    img = Image.new("RGB", (_W, _H), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    draw.text((_L, 12), title, fill="black", font=font)
    legend_w = 140 if labels is not None else 0  # the legend sits right of the frame, never over points
    x0, x1, y0, y1 = _L, _W - _R - legend_w, _H - _B, _T
    draw.rectangle((x0, y1, x1, y0), outline="black")
    if len(x):
        xlo, xhi = float(x.min()), float(x.max())
        ylo, yhi = float(y.min()), float(y.max())
        xpad, ypad = (xhi - xlo) * 0.05 or 0.5, (yhi - ylo) * 0.05 or 0.5
        xlo, xhi, ylo, yhi = xlo - xpad, xhi + xpad, ylo - ypad, yhi + ypad
        px = lambda v: x0 + (v - xlo) / (xhi - xlo) * (x1 - x0)  # noqa: E731
        py = lambda v: y0 - (v - ylo) / (yhi - ylo) * (y0 - y1)  # noqa: E731
        for t in _ticks(xlo, xhi):
            draw.line((px(t), y0, px(t), y0 + 4), fill="black")
            draw.text((px(t) - 12, y0 + 6), f"{t:g}", fill="black", font=font)
        for t in _ticks(ylo, yhi):
            draw.line((x0 - 4, py(t), x0, py(t)), fill="black")
            draw.text((8, py(t) - 6), f"{t:g}", fill="black", font=font)
        palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
        colour_of = {}
        if labels is not None:
            for g in labels:
                colour_of.setdefault(g, palette[len(colour_of) % len(palette)])
        for i, (a, b) in enumerate(zip(x, y)):
            c = colour_of[labels[i]] if labels is not None else palette[0]
            draw.ellipse((px(a) - 2.5, py(b) - 2.5, px(a) + 2.5, py(b) + 2.5), outline=c, fill=c)
        for k, (g, c) in enumerate(colour_of.items()):
            ly = y1 + 12 * k
            draw.ellipse((x1 + 10, ly + 2, x1 + 16, ly + 8), outline=c, fill=c)
            draw.text((x1 + 22, ly), str(g)[:20], fill="black", font=font)
    else:
        draw.text((x0 + 10, y1 + 10), "no scored items", fill="black", font=font)
    draw.text(((x0 + x1) // 2 - 3 * len(xlabel), _H - 20), xlabel, fill="black", font=font)
    draw.text((8, 22), ylabel, fill="black", font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path
