"""The evaluation protocol: which metric is computed on which items, with which direction and uncertainty.

MOS sets (docs/datasets.md, "Metrics"): PLCC raw and after the logistic fit (separate fields; a failed fit is reported),
SRCC, KRCC, pairwise accuracy, bootstrap CIs that resample *groups* (all distortions of one reference together),
and the size-weighted WAVG over sets. Lower-better sets (DMOS) are negated first, so a good model always scores
positive correlations.

Synthetic sets (ground truth = distortion level within one reference and type; never pooled across types):
- L-test: mean over (reference, type) of SRCC(score, -level);
- P-test: pairwise accuracy over all pairs inside each (reference, type);
- D-test: can one threshold tell the pristine references from their distorted versions? Best balanced accuracy
  over thresholds, and the AUC P(pristine scores above distorted), after the Waterloo Exploration Database's
  D-test (Ma et al., TIP 2017).

Predictions that failed to parse are NaN: they are dropped from every metric and counted (`n_failed`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Optional, Sequence

import numpy as np
from scipy import stats

from evoquality.data.manifest import Manifest
from evoquality.evaluation import metrics

DEFAULT_BOOTSTRAP = 1000


def _as_scores(scores, n: int) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (n,):
        raise ValueError(f"scores must have shape ({n},) to match the manifest, got {s.shape}")
    if np.isinf(s).any():
        raise ValueError("scores must be finite or NaN (NaN = not parsed), got an infinite value")
    return s


def mos_metrics(pred, mos, higher_better: bool = True) -> dict:
    """All point metrics for one MOS set. pred, mos: (N,) finite."""
    target = np.asarray(mos, dtype=np.float64) * (1.0 if higher_better else -1.0)
    plcc_fit, fit = metrics.plcc_logistic(pred, target) if len(target) >= 5 else (math.nan, None)
    return {
        "plcc": metrics.plcc(pred, target),
        "plcc_logistic": plcc_fit,
        "logistic_fit": "too few items" if fit is None else fit.message,
        "srcc": metrics.srcc(pred, target),
        "krcc": metrics.krcc(pred, target),
        "pairwise": metrics.pairwise_accuracy(pred, target),
    }


_BOOT = {"plcc": metrics.plcc, "srcc": metrics.srcc, "krcc": metrics.krcc}


def bootstrap_ci(pred, target, groups: Optional[Sequence] = None, *, stats_names=("plcc", "srcc"),
                 n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0, level: float = 0.95) -> dict:
    """Percentile CIs by a cluster bootstrap: resample whole groups with replacement (items when groups is None).

    pred, target: (N,) finite, higher = better. Returns {stat: [low, high]}; a resample where a statistic is
    undefined (constant) is left out of that statistic's percentiles, and their number is returned as "undefined".
    """
    p, t = metrics._pair(pred, target)
    for name in stats_names:
        if name not in _BOOT:
            raise ValueError(f"stats_names must be among {sorted(_BOOT)}, got {name!r}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if groups is None:
        members = [np.array([i]) for i in range(len(p))]
    else:
        if len(groups) != len(p):
            raise ValueError(f"groups must have length {len(p)}, got {len(groups)}")
        by_group: dict = defaultdict(list)
        for i, g in enumerate(groups):
            by_group[g].append(i)
        members = [np.array(v) for v in by_group.values()]
    rng = np.random.default_rng(seed)
    draws = {name: [] for name in stats_names}
    undefined = {name: 0 for name in stats_names}
    for _ in range(n_boot):
        idx = np.concatenate([members[j] for j in rng.integers(0, len(members), len(members))])
        for name in stats_names:
            value = _BOOT[name](p[idx], t[idx]) if len(idx) >= 2 else math.nan
            if math.isnan(value):
                undefined[name] += 1
            else:
                draws[name].append(value)
    alpha = (1 - level) / 2
    out = {}
    for name in stats_names:
        vals = np.asarray(draws[name])
        out[name] = [float(np.quantile(vals, alpha)), float(np.quantile(vals, 1 - alpha))] if len(vals) else None
    out["undefined"] = undefined
    return out


def wavg(values: Sequence[float], sizes: Sequence[int]) -> float:
    """Size-weighted mean over sets; NaN if any set's value is NaN (a failure is not averaged away)."""
    v, n = np.asarray(values, dtype=np.float64), np.asarray(sizes, dtype=np.float64)
    if v.shape != n.shape or v.ndim != 1 or len(v) == 0:
        raise ValueError(f"values and sizes must be equal-length non-empty 1-D, got {v.shape} and {n.shape}")
    if (n <= 0).any():
        raise ValueError("sizes must be positive")
    return float((v * n).sum() / n.sum())


def _distorted_groups(manifest: Manifest, s: np.ndarray):
    """(reference, type) -> (levels, scores) over the distorted records with a parsed score."""
    groups: dict = defaultdict(lambda: ([], []))
    for rec, score in zip(manifest.records, s):
        if rec.level is None or rec.level < 1 or rec.dist_type is None or math.isnan(score):
            continue
        key = (rec.group or rec.ref, rec.dist_type)
        groups[key][0].append(rec.level)
        groups[key][1].append(score)
    return groups


def l_test(manifest: Manifest, scores) -> dict:
    """Mean SRCC(score, -level) per (reference, type), overall and per type. A group whose scores are all equal
    has no rank information: it counts as SRCC 0 and is counted in "constant"; groups with < 2 scored items are
    left out and counted in "too_small"."""
    s = _as_scores(scores, len(manifest))
    per_type: dict = defaultdict(list)
    constant = too_small = 0
    for (_ref, dist), (levels, vals) in sorted(_distorted_groups(manifest, s).items()):
        if len(vals) < 2 or len(set(levels)) < 2:
            too_small += 1
            continue
        if np.ptp(vals) == 0:
            constant += 1
            per_type[dist].append(0.0)
        else:
            per_type[dist].append(float(stats.spearmanr(vals, -np.asarray(levels)).statistic))
    all_vals = [v for vs in per_type.values() for v in vs]
    return {"l_test": float(np.mean(all_vals)) if all_vals else math.nan, "n_groups": len(all_vals),
            "constant": constant, "too_small": too_small,
            "per_type": {k: float(np.mean(v)) for k, v in sorted(per_type.items())}}


def p_test(manifest: Manifest, scores) -> dict:
    """Pairwise accuracy over all pairs of different level inside each (reference, type), pooled over pairs;
    a tie in score counts 1/2. Also per type."""
    s = _as_scores(scores, len(manifest))
    right: dict = defaultdict(float)
    total: dict = defaultdict(int)
    for (_ref, dist), (levels, vals) in _distorted_groups(manifest, s).items():
        lv, sv = np.asarray(levels), np.asarray(vals)
        dl = np.sign(lv[:, None] - lv[None, :])  # +1 where i is more distorted than j
        ds = np.sign(sv[None, :] - sv[:, None])  # +1 where j scores above i: the correct order
        mask = np.triu(dl != 0, k=1)
        right[dist] += float(((ds == dl) & mask).sum() + 0.5 * ((ds == 0) & mask).sum())
        total[dist] += int(mask.sum())
    n = sum(total.values())
    return {"p_test": sum(right.values()) / n if n else math.nan, "n_pairs": n,
            "per_type": {k: right[k] / total[k] for k in sorted(total) if total[k]}}


def d_test(manifest: Manifest, scores) -> dict:
    """Pristine (level 0) vs distorted: best balanced accuracy of one threshold ("pristine if score > T"), and the
    AUC = P(pristine > distorted) + P(tie)/2."""
    s = _as_scores(scores, len(manifest))
    pristine = np.array([x for r, x in zip(manifest.records, s) if r.level == 0 and not math.isnan(x)])
    distorted = np.array([x for r, x in zip(manifest.records, s) if (r.level or 0) >= 1 and not math.isnan(x)])
    if len(pristine) == 0 or len(distorted) == 0:
        return {"d_test": math.nan, "auc": math.nan, "n_pristine": len(pristine), "n_distorted": len(distorted)}
    auc = float(stats.mannwhitneyu(pristine, distorted, alternative="two-sided").statistic
                / (len(pristine) * len(distorted)))
    best = 0.5  # the trivial threshold (everything one class) already reaches 1/2
    p_sorted, d_sorted = np.sort(pristine), np.sort(distorted)
    for thr in np.unique(np.concatenate([pristine, distorted])):
        tpr = 1.0 - np.searchsorted(p_sorted, thr, side="right") / len(p_sorted)  # pristine above thr
        tnr = np.searchsorted(d_sorted, thr, side="right") / len(d_sorted)  # distorted at or below thr
        best = max(best, 0.5 * (tpr + tnr))
    return {"d_test": float(best), "auc": auc, "n_pristine": len(pristine), "n_distorted": len(distorted)}


def evaluate(manifest: Manifest, scores, *, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> dict:
    """Every metric that applies to `manifest` for `scores` (N,), NaN = failed prediction.

    MOS sets give the MOS metrics + bootstrap CIs; sets with levels give the L/P/D tests (a set may have both,
    e.g. KADID-10k's levels — then both are reported).
    """
    s = _as_scores(scores, len(manifest))
    failed = int(np.isnan(s).sum())
    out: dict = {"name": manifest.name, "subset": manifest.header.subset, "n": len(manifest), "n_failed": failed,
                 "higher_better": manifest.header.higher_better}
    with_mos = [i for i, r in enumerate(manifest.records) if r.mos is not None and not math.isnan(s[i])]
    out["n_scored"] = len(with_mos) if manifest.has_mos else len(manifest) - failed
    if len(with_mos) >= 2:
        idx = np.asarray(with_mos)
        mos = np.array([manifest.records[i].mos for i in with_mos])
        out.update(mos_metrics(s[idx], mos, manifest.header.higher_better))
        groups = [manifest.records[i].group or manifest.records[i].image for i in with_mos]
        if n_boot > 0:
            target = mos * (1.0 if manifest.header.higher_better else -1.0)
            out["ci95"] = bootstrap_ci(s[idx], target, groups, n_boot=n_boot, seed=seed)
    if any(r.level is not None for r in manifest.records):
        lt, pt = l_test(manifest, s), p_test(manifest, s)
        out.update({"l_test": lt["l_test"], "n_groups": lt["n_groups"], "constant_groups": lt["constant"],
                    "too_small_groups": lt["too_small"], "l_per_type": lt["per_type"],
                    "p_test": pt["p_test"], "n_pairs": pt["n_pairs"], "p_per_type": pt["per_type"]})
        out.update(d_test(manifest, s))
    return out
