"""Evaluation of scorers on IQA test sets: score each set, compute the protocol's metrics, write JSON, markdown and
plots (the library behind `evoquality eval`, `commands/evaluate.py`).

Outputs under the output folder: ``results.json`` (every metric, CI, parse-failure rate, settings), ``results.md``
(one row per dataset and scorer, plus WAVG, with subset and n), ``scatter_<dataset>.png`` and ``.pdf`` (prediction
vs MOS with the fitted logistic, or vs level for synthetic sets) and ``predictions_<dataset>.jsonl`` (per image).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from evoquality._files import atomic_write
from evoquality.data import Manifest
from evoquality.evaluation import metrics, protocol, report
from evoquality.evaluation.scorers import REFERENCE_SCORERS, ModelScorer, ScoreResult, failure_rates

REFERENCE_LABELS = {"psnr": "PSNR (oracle)", "ssim": "SSIM (oracle)", "piqe": "PIQE"}


def _paths(m: Manifest):
    images = [m.image_path(r) for r in m.records]
    # A pristine record of a synthetic set is its own reference.
    refs = [m.image_path(r.ref) if r.ref else (m.image_path(r) if r.level == 0 else None) for r in m.records]
    return images, refs


def _row(m: Manifest, preds: np.ndarray, result: ScoreResult, n_boot: int, seed: int) -> dict:
    row = protocol.evaluate(m, preds, n_boot=n_boot, seed=seed)
    row["failures"] = dict(result.failures)
    row["decode_warnings"] = result.decode_warnings
    return row


def limit_manifest(m: Manifest, limit: Optional[int]) -> Manifest:
    """The first `limit` records (smoke runs); the subset label says so."""
    if limit is None or limit >= len(m):
        return m
    if limit < 2:
        raise ValueError(f"limit must be >= 2, got {limit}")
    h = m.header
    skipped = dict(h.skipped, **{"beyond --limit": len(m) - limit})
    return Manifest(replace(h, subset=f"{h.subset}, first {limit}", skipped=skipped), m.records[:limit])


def evaluate_manifest(m: Manifest, model: Optional[ModelScorer], reference: Sequence[str], *, n_boot: int,
                      seed: int, progress: bool) -> tuple[dict, dict]:
    """Score one set with the model and each applicable reference scorer.

    Returns (entry for results.json, per-image predictions {column: (N,) array})."""
    images, refs = _paths(m)
    rows, preds, notes = {}, {}, []
    if model is not None:
        res = model.score(images, progress=progress)
        entry_rates = failure_rates(res, len(m))
        if res.greedy is not None:
            rows["model greedy"] = _row(m, res.greedy, res, n_boot, seed)
            preds["model greedy"] = res.greedy
        if res.sampled is not None:
            label = f"model mean@{res.n_samples}"
            rows[label] = _row(m, res.sampled, res, n_boot, seed)
            preds[label] = res.sampled
            preds["n_parsed"] = res.n_parsed
        for r in rows.values():
            r["parse_failure_rate"] = entry_rates
    for name in reference:
        scorer = REFERENCE_SCORERS[name]()
        if scorer.full_reference and all(r is None for r in refs):
            notes.append(f"{name}: no reference images in this set")
            continue
        res = scorer.score(images, refs if scorer.full_reference else None, progress=progress)
        # Protocol metrics assume higher = better: flip lower-better scorers (PIQE) before evaluating.
        signed = res.scores if scorer.higher_better else -res.scores
        rows[REFERENCE_LABELS[name]] = _row(m, signed, res, n_boot, seed)
        preds[name] = res.scores
    entry = {"name": m.name, "subset": m.header.subset, "n": len(m), "has_mos": m.has_mos,
             "has_levels": any(r.level is not None for r in m.records), "higher_better": m.header.higher_better,
             "mos_range": m.header.mos_range, "source": m.header.source, "skipped": m.header.skipped,
             "rows": rows, "notes": notes}
    return entry, preds


def _main_prediction(preds: dict) -> Optional[str]:
    """The column a scatter plot shows: the model's mean-of-N, else its greedy score, else a classical one."""
    for prefix in ("model mean@", "model greedy", "piqe", "psnr", "ssim"):
        for key in preds:
            if key.startswith(prefix):
                return key
    return None


def _scatter(out_dir: Path, m: Manifest, entry: dict, preds: dict) -> Optional[Path]:
    key = _main_prediction(preds)
    if key is None:
        return None
    row = entry["rows"][REFERENCE_LABELS.get(key, key)]

    def stat(k: str, name: str) -> str:
        return f"{name} " + ("—" if row.get(k) is None or math.isnan(row[k]) else f"{row[k]:.3f}")

    x, curve = preds[key], None
    if m.has_mos:
        y = np.array([np.nan if r.mos is None else r.mos for r in m.records])
        ylabel = "MOS" if m.header.higher_better else "DMOS (lower = better)"
        stats = f"{stat('srcc', 'SRCC')}, {stat('plcc', 'PLCC')}"
        # The curve maps the raw prediction to the raw MOS (the table's PLCC (logistic) fits the signed pair).
        keep = np.isfinite(x) & np.isfinite(y)
        fit = metrics.fit_logistic4(x[keep], y[keep]) if keep.sum() >= 5 else None
        curve = fit if fit is not None and fit.ok else None
    else:
        y = np.array([np.nan if r.level is None else r.level for r in m.records], dtype=float)
        ylabel, stats = "distortion level (0 = pristine)", stat("l_test", "L-test")
    groups = [r.dist_type or "pristine" for r in m.records] if not m.has_mos else None
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in m.name)
    title = f"{m.name} ({m.header.subset})\n{key}: {stats}, n = {row.get('n_scored', len(m))}"
    fig = report.scatter_figure(x, y, title=title, xlabel=f"prediction ({key})", ylabel=ylabel, groups=groups,
                                curve=curve, curve_label="4-parameter logistic fit")
    return report.save_figure(fig, out_dir / f"scatter_{safe}")[0]


def wavg_rows(entries: Sequence[dict]) -> list[dict]:
    """Size-weighted means over the MOS sets, per scorer, over the sets that scorer has a row for (a full-reference
    scorer has none on a set without references). A row without a value (nothing scored, a failed fit) makes that
    WAVG NaN rather than being averaged away."""
    scorers: dict[str, list] = {}
    for e in entries:
        if e["has_mos"]:
            for s, r in e["rows"].items():
                scorers.setdefault(s, []).append((e["n"], r))
    out = []
    for s, items in scorers.items():
        sizes = [n for n, _ in items]
        row = {"scorer": s, "n": sum(sizes), "n_sets": len(items)}
        for k, _ in report.MOS_COLUMNS:
            row[k] = protocol.wavg([r.get(k, math.nan) for _, r in items], sizes)
        out.append(row)
    return out


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if math.isnan(float(obj)) else float(obj)  # JSON has no NaN: null = undefined/failed
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_outputs(out_dir: Path, entries: list[dict], manifests: list[Manifest], preds: list[dict],
                  settings: dict) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    wavg = wavg_rows(entries)
    plots = {}
    for m, e, p in zip(manifests, entries, preds):
        path = _scatter(out_dir, m, e, p)
        if path is not None:
            plots[m.name] = path.name
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in m.name)
        atomic_write(out_dir / f"predictions_{safe}.jsonl",
                     "".join(json.dumps(_jsonable({**r.to_json(), **{k: v[i] for k, v in p.items()}})) + "\n"
                             for i, r in enumerate(m.records)))
    results = {"settings": settings, "datasets": entries, "wavg": wavg, "plots": plots}
    atomic_write(out_dir / "results.json", json.dumps(_jsonable(results), indent=2))
    md = [f"# EvoQuality evaluation — {settings.get('model') or 'classical scorers only'}", ""]
    md.append(report.markdown_tables(entries, wavg))
    atomic_write(out_dir / "results.md", "\n".join(md))
    return results
