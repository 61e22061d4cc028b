"""`evoquality eval`: score test sets with a model and the classical yardsticks, write JSON, markdown and plots.

    evoquality eval --model CKPT --dataset koniq10k --root /data/koniq --dataset csiq --root /data/CSIQ \\
        --dataset synthetic --root bench/ --samples 8 --out eval/

Each ``--dataset`` may be followed by its own ``--root``, ``--subset`` and ``--label-file``; ``--dataset synthetic``
without ``--root`` builds the default synthetic benchmark under OUT/synthetic first. Outputs under --out:
``results.json`` (every metric, CI, parse-failure rate, settings), ``results.md`` (one row per dataset and scorer,
plus WAVG, with subset and n), ``scatter_<dataset>.png`` and ``.pdf`` (prediction vs MOS with the fitted logistic,
or vs level for synthetic sets) and ``predictions_<dataset>.jsonl`` (per image). The model is scored greedily and
with the mean of N samples (docs/datasets.md "Evaluation protocol"); without --model only the classical rows are computed.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from evoquality.data import Manifest, load_dataset
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
        with open(out_dir / f"predictions_{safe}.jsonl", "w") as fh:
            for i, r in enumerate(m.records):
                fh.write(json.dumps(_jsonable({**r.to_json(), **{k: v[i] for k, v in p.items()}})) + "\n")
    results = {"settings": settings, "datasets": entries, "wavg": wavg, "plots": plots}
    (out_dir / "results.json").write_text(json.dumps(_jsonable(results), indent=2))
    md = [f"# EvoQuality evaluation — {settings.get('model') or 'classical scorers only'}", ""]
    md.append(report.markdown_tables(entries, wavg))
    (out_dir / "results.md").write_text("\n".join(md))
    return results


def _model_scorer(args) -> Optional[ModelScorer]:
    if args.model is None:
        return None
    from evoquality.modeling import load_policy

    policy = load_policy(args.model, dtype=args.dtype, device=args.device)
    return ModelScorer(policy, n_samples=args.samples, mode="greedy", temperature=args.temperature,
                       max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, seed=args.seed,
                       name=str(args.model))


class _DatasetAction(argparse.Action):
    """--dataset starts a new entry; --root/--subset/--label-file set fields of the latest one."""

    def __call__(self, parser, namespace, value, option_string=None):
        entries = getattr(namespace, "datasets", None) or []
        field = self.dest
        if field == "dataset":
            entries.append({"name": value, "root": None, "subset": None, "label_file": None})
        else:
            if not entries:
                parser.error(f"{option_string} must follow a --dataset")
            if entries[-1][field] is not None:
                parser.error(f"{option_string} given twice for --dataset {entries[-1]['name']}")
            entries[-1][field] = value
        namespace.datasets = entries


def _default_synthetic(folder: Path, seed: int, size: Optional[int]) -> Path:
    """The default synthetic benchmark (8 bundled photos x `DEFAULT_TYPES` x 5 levels), built once per folder."""
    from evoquality.data import MANIFEST_NAME
    from evoquality.data.synthetic import DEFAULT_TYPES, build_synthetic_benchmark

    if not (folder / MANIFEST_NAME).is_file():
        build_synthetic_benchmark(folder, None, types=DEFAULT_TYPES, seed=seed, size=size)
    return folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.splitlines()[0]
    parser.add_argument("--model", type=Path, help="checkpoint directory (omit for the classical rows only)")
    parser.add_argument("--dataset", dest="dataset", action=_DatasetAction, required=True,
                        help="a standard set (koniq10k, spaq, livec, kadid10k, pipal, agiqa3k, csiq, tid2013), "
                             "'synthetic'/'manifest' (ROOT/manifest.jsonl), or a label file / image folder path")
    parser.add_argument("--root", dest="root", action=_DatasetAction, help="folder of the preceding --dataset")
    parser.add_argument("--subset", dest="subset", action=_DatasetAction, help="subset of the preceding --dataset")
    parser.add_argument("--label-file", dest="label_file", action=_DatasetAction,
                        help="label file of the preceding --dataset, overriding its default")
    parser.add_argument("--synthetic-size", type=int, default=None,
                        help="with --dataset synthetic and no --root: build the default benchmark under "
                             "OUT/synthetic at this square size (default: the photos' native sizes)")
    parser.add_argument("--missing", choices=("error", "skip"), default="error",
                        help="images listed but absent: fail (default) or skip and count them")
    parser.add_argument("--samples", type=int, default=8, help="sampled answers per image for the mean (0 = off)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: CUDA when present)")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--reference", default="psnr,ssim,piqe",
                        help="classical scorers to add as rows: comma list of psnr, ssim, piqe, or 'none'")
    parser.add_argument("--bootstrap", type=int, default=protocol.DEFAULT_BOOTSTRAP,
                        help="bootstrap resamples for the 95%% CIs (0 = none)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images of each set (smoke runs)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("eval_out"))


def run(args) -> int:
    reference = [] if args.reference == "none" else [s.strip() for s in args.reference.split(",") if s.strip()]
    unknown = [s for s in reference if s not in REFERENCE_SCORERS]
    if unknown:
        raise SystemExit(f"--reference: unknown scorer(s) {unknown}; choose from {sorted(REFERENCE_SCORERS)}")
    if args.model is None and not reference:
        raise SystemExit("nothing to evaluate: give --model and/or --reference scorers")
    if args.samples < 0 or args.bootstrap < 0:
        raise SystemExit("--samples and --bootstrap must be >= 0")
    manifests = []
    for d in args.datasets:
        try:
            if d["name"] == "synthetic" and d["root"] is None:
                d["root"] = _default_synthetic(args.out / "synthetic", args.seed, args.synthetic_size)
            m = load_dataset(d["name"], d["root"], label_file=d["label_file"], subset=d["subset"],
                             missing=args.missing)
            manifests.append(limit_manifest(m, args.limit))
        except (ValueError, ImportError) as exc:  # ManifestError is a ValueError: a bad file or argument, named
            raise SystemExit(f"evoquality eval: --dataset {d['name']}: {exc}") from None
    model = _model_scorer(args)
    entries, preds = [], []
    for m in manifests:
        t0 = time.perf_counter()
        entry, p = evaluate_manifest(m, model, reference, n_boot=args.bootstrap, seed=args.seed,
                                     progress=not args.no_progress)
        entry["seconds"] = round(time.perf_counter() - t0, 3)
        entries.append(entry)
        preds.append(p)
    settings = {"model": str(args.model) if args.model else None, "samples": args.samples,
                "temperature": args.temperature, "max_new_tokens": args.max_new_tokens, "seed": args.seed,
                "bootstrap": args.bootstrap, "reference": reference, "limit": args.limit,
                "device": str(model.policy.device) if model else None}
    write_outputs(args.out, entries, manifests, preds, settings)
    print((args.out / "results.md").read_text())
    print(f"wrote {args.out / 'results.json'}, {args.out / 'results.md'} and the scatter plots")
    return 0
