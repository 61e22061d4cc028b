"""Agreement between predicted scores and ground truth: PLCC (raw and after the 4-parameter logistic), SRCC,
KRCC (tau-b), pairwise accuracy.

All functions take 1-D arrays ``pred`` (N,) and ``target`` (N,) of finite floats, both "higher = better" (the
protocol flips lower-better sets before calling them). A correlation that is undefined (constant input) is NaN,
never a made-up 0; a logistic fit that does not converge is reported as failed, with the reason.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy import optimize, stats


def _pair(pred, target, min_n: int = 2) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if p.ndim != 1 or t.ndim != 1:
        raise ValueError(f"pred and target must be 1-D, got shapes {p.shape} and {t.shape}")
    if p.shape != t.shape:
        raise ValueError(f"pred and target must have the same length, got {p.shape[0]} and {t.shape[0]}")
    if p.shape[0] < min_n:
        raise ValueError(f"need at least {min_n} scored items, got {p.shape[0]}")
    if not (np.isfinite(p).all() and np.isfinite(t).all()):
        raise ValueError("pred and target must be finite (drop unparsed predictions before computing metrics)")
    return p, t


def plcc(pred, target) -> float:
    """Pearson linear correlation; NaN when either input is constant."""
    p, t = _pair(pred, target)
    if np.ptp(p) == 0 or np.ptp(t) == 0:
        return math.nan
    return float(stats.pearsonr(p, t).statistic)


def srcc(pred, target) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either input is constant."""
    p, t = _pair(pred, target)
    if np.ptp(p) == 0 or np.ptp(t) == 0:
        return math.nan
    return float(stats.spearmanr(p, t).statistic)


def krcc(pred, target) -> float:
    """Kendall tau-b (tie-corrected); NaN when either input is constant."""
    p, t = _pair(pred, target)
    if np.ptp(p) == 0 or np.ptp(t) == 0:
        return math.nan
    return float(stats.kendalltau(p, t, variant="b").statistic)


def _pairs_not_tied(x: np.ndarray) -> float:
    n = x.shape[0]
    _, counts = np.unique(x, return_counts=True)
    return n * (n - 1) / 2 - float((counts * (counts - 1) / 2).sum())


def pairwise_accuracy(pred, target) -> float:
    """Fraction of the pairs with different targets that `pred` orders the same way; a tie in `pred` counts 1/2.

    Computed in O(N log N): with C/D the concordant/discordant pairs, P_t the pairs not tied in target and P_p not
    tied in pred, accuracy = (C + (P_t - C - D)/2) / P_t = 1/2 + (C - D) / (2 P_t), and C - D = tau_b sqrt(P_p P_t).
    NaN when every target is equal (no pair to order).
    """
    p, t = _pair(pred, target)
    pairs_t = _pairs_not_tied(t)
    if pairs_t == 0:
        return math.nan
    pairs_p = _pairs_not_tied(p)
    if pairs_p == 0:
        return 0.5
    tau = stats.kendalltau(p, t, variant="b").statistic
    return float(0.5 + tau * math.sqrt(pairs_p * pairs_t) / (2.0 * pairs_t))


def logistic4(x, b1, b2, b3, b4):
    """f(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2 (docs/datasets.md, "Metrics")."""
    z = -(np.asarray(x, dtype=np.float64) - b3) / abs(b4)
    return (b1 - b2) / (1.0 + np.exp(np.clip(z, -700.0, 700.0))) + b2


def _logistic4_jac(x, b1, b2, b3, b4):
    """Analytic Jacobian (N, 4) of `logistic4`. Finite differences fail here: MINPACK steps relative to |b3|,
    and the initial b3 = mean(x) is ~1e-17 for centred predictions, so b3 would never move."""
    x = np.asarray(x, dtype=np.float64)
    a = abs(b4)
    s = 1.0 / (1.0 + np.exp(np.clip(-(x - b3) / a, -700.0, 700.0)))
    ds = (b1 - b2) * s * (1.0 - s)
    return np.stack([s, 1.0 - s, -ds / a, -ds * (x - b3) / a**2 * np.sign(b4)], axis=1)


@dataclass(frozen=True)
class LogisticFit:
    ok: bool
    params: Optional[tuple[float, float, float, float]]
    message: str

    def __call__(self, x):
        if not self.ok:
            raise RuntimeError(f"the logistic fit failed: {self.message}")
        return logistic4(x, *self.params)


def fit_logistic4(pred, target, maxfev: int = 20000) -> LogisticFit:
    """Least-squares fit of `logistic4` mapping pred -> target, from [max t, min t, mean p, std p / 4]."""
    p, t = _pair(pred, target, min_n=5)  # four parameters need more than four points
    if np.ptp(p) == 0:
        return LogisticFit(False, None, "predictions are constant")
    init = [t.max(), t.min(), p.mean(), p.std() / 4.0]
    try:
        with warnings.catch_warnings():
            # "covariance could not be estimated" follows an exact fit; convergence is judged by `ier` below.
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            params, _, _, mesg, ier = optimize.curve_fit(logistic4, p, t, p0=init, jac=_logistic4_jac,
                                                                maxfev=maxfev, full_output=True)
    except (RuntimeError, ValueError) as exc:
        return LogisticFit(False, None, f"{type(exc).__name__}: {exc}")
    if ier not in (1, 2, 3, 4):
        return LogisticFit(False, None, f"did not converge: {mesg}")
    if not np.isfinite(params).all():
        return LogisticFit(False, None, f"non-finite parameters {params.tolist()}")
    return LogisticFit(True, tuple(float(v) for v in params), "converged")


def plcc_logistic(pred, target) -> tuple[float, LogisticFit]:
    """PLCC between the logistic-mapped predictions and the target, with the fit (NaN if the fit failed)."""
    fit = fit_logistic4(pred, target)
    if not fit.ok:
        return math.nan, fit
    mapped = fit(np.asarray(pred, dtype=np.float64))
    if np.ptp(mapped) == 0:
        # Converged to a flat curve (b1 = b2 or a step outside the data): no correlation to report.
        return math.nan, LogisticFit(False, fit.params, "the fitted curve is flat over the predictions")
    return plcc(mapped, target), fit
