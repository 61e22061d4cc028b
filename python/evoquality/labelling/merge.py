"""Merge a round's vote shards into `labels.jsonl`, `labels_meta.json` and `summary.json`.

Run by the main process after every process finished, and safe to re-run: the outputs are derived from the stored
votes only (atomic rewrites), so a different label policy can be applied to finished votes without regenerating.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

from evoquality.labelling.labels import compare_labels, margin_histogram, position_bias, write_labels
from evoquality._files import atomic_write
from evoquality.labelling.store import RoundDir
from evoquality.labelling.variants import failed_variants

if TYPE_CHECKING:
    from evoquality.labelling.config import LabelConfig
    from evoquality.labelling.plan import Plan

META_FILE = "labels_meta.json"
SUMMARY_FILE = "summary.json"


def _rate(num: float, den: float) -> float:
    return float(num / den) if den else math.nan


def _bad_images(records: dict[int, dict], key: str = "bad_images") -> dict[str, str]:
    bad: dict[str, str] = {}
    for rec in records.values():
        bad.update(rec.get(key, {}))
    return dict(sorted(bad.items()))


def _throughput(runs: list[dict]) -> dict:
    """votes/s of the latest session (all its processes together) and over all sessions."""
    if not runs:
        return {"votes_per_s": math.nan, "sessions": 0}
    sessions: dict[int, list[dict]] = {}
    for r in runs:
        sessions.setdefault(r["session"], []).append(r)
    def rate(entries):
        # Processes run concurrently: a session lasts as long as its slowest process.
        return _rate(sum(e["generations"] for e in entries), max(e["seconds"] for e in entries))
    last = sessions[max(sessions)]
    gens = sum(r["generations"] for r in runs)
    secs = sum(max(e["seconds"] for e in s) for s in sessions.values())
    return {
        "votes_per_s": rate(last), "processes": len(last), "generations": sum(e["generations"] for e in last),
        "seconds": max(e["seconds"] for e in last), "sessions": len(sessions),
        "votes_per_s_all_sessions": _rate(gens, secs),
    }


def _json_safe(obj):
    """NaN (a rate over nothing) becomes null: summary.json stays strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def merge_round(rd: RoundDir, cfg: "LabelConfig", plan: "Plan") -> dict:
    records = rd.read_records()
    pairs = rd.read_pairs()
    pending = sum(1 for i in plan.items if i not in records)
    if cfg.mode == "compare":
        rows, arrays = compare_labels(pairs, records, label=cfg.label, min_margin=cfg.min_margin,
                                      no_votes=cfg.no_votes)
        voted = [p for p in pairs if p["pair"] in records and "dropped" not in records[p["pair"]]]
        dropped_bad = sum(1 for p in pairs if "dropped" in records.get(p["pair"], {}))
        votes, valid = arrays["votes"], arrays["valid"]
        n_votes, n_valid = int(valid.size), int(valid.sum())
        vote_stats = {"position_bias": position_bias(votes, valid)}
        no_valid = sum(1 for r in rows if r["votes_i"] + r["votes_j"] == 0)
    else:
        from evoquality.labelling.score_labels import score_labels

        rows, stats = score_labels(pairs, records, plan, label=cfg.label, min_margin=cfg.min_margin,
                                   no_votes=cfg.no_votes)
        voted, dropped_bad = stats["voted_pairs"], stats["dropped_pairs"]
        n_votes, n_valid = stats["samples"], stats["valid_samples"]
        vote_stats = {"position_bias": None, "score_mean": stats["score_mean"], "score_std": stats["score_std"],
                      "images_scored": stats["images_scored"]}
        no_valid = sum(1 for r in rows if r["p_win"] is None)
    write_labels(rd.path, rows)
    n_labels = len(rows)
    # A synthetic variant that was never made is missing on disk: report why it was not made, not the missing file.
    failed = failed_variants(rd.path)
    bad_images = {path: f"synthetic variant not made: {failed[path]}" if path in failed else why
                  for path, why in _bad_images(records).items()}
    ties = sum(1 for r in rows if r["p_star"] == 0.5)
    summary = {
        "mode": cfg.mode,
        "round_dir": str(rd.path),
        "pool_images": len(plan.pool.paths),
        "pairs_planned": len(pairs),
        "pairs_labelled": n_labels,
        "pairs_dropped_bad_image": dropped_bad,
        "pairs_no_valid_votes": no_valid if cfg.no_votes == "tie" else len(voted) - n_labels,
        "items_pending": pending,
        "n_bad_images": len(bad_images),
        "bad_images": bad_images,
        # Used as transformers would use them (strict=False), but counted: a corrupt file is worth knowing about.
        "n_images_decoded_with_warning": len(_bad_images(records, "image_warnings")),
        "images_decoded_with_warning": _bad_images(records, "image_warnings"),
        "variants_failed": failed,
        "votes_per_item": cfg.votes,
        "votes_total": n_votes,
        "votes_valid": n_valid,
        "votes_invalid": n_votes - n_valid,
        "parse_failure_rate": _rate(n_votes - n_valid, n_votes),
        "tie_rate": _rate(ties, n_labels),
        "p_star_mean": _rate(sum(r["p_star"] for r in rows), n_labels),
        "flagged": sum(1 for r in rows if r["flagged"]),
        "margin_histogram": margin_histogram(rows),
        **vote_stats,
        "throughput": _throughput(rd.read_runs()),
        "label_policy": {"label": cfg.label, "min_margin": cfg.min_margin, "no_votes": cfg.no_votes},
    }
    meta = {
        "mode": cfg.mode, "label": cfg.label, "min_margin": cfg.min_margin, "no_votes": cfg.no_votes,
        "votes_per_item": cfg.votes, "n_labels": n_labels, "complete": pending == 0,
        "fingerprint": json.loads(rd.config_file.read_text())["fingerprint"],
    }
    summary = _json_safe(summary)
    atomic_write(rd.path / META_FILE, json.dumps(meta, indent=2) + "\n")
    atomic_write(rd.path / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    return summary
