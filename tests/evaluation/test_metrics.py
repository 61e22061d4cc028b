"""Metrics against hand-computed values, scipy, and brute-force pair counting."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from evoquality.evaluation import metrics

PRED = [1.0, 2.0, 3.0, 4.0, 5.0]
MOS = [2.0, 1.0, 4.0, 3.0, 5.0]


def test_hand_values():
    # PLCC: deviations (-2,-1,0,1,2) and (-1,-2,1,0,2): sum of products 8, both sums of squares 10 -> 0.8
    assert metrics.plcc(PRED, MOS) == pytest.approx(0.8, abs=1e-15)
    # SRCC: ranks equal the values; sum d^2 = 4 -> 1 - 6*4/(5*24) = 0.8
    assert metrics.srcc(PRED, MOS) == pytest.approx(0.8, abs=1e-15)
    # KRCC: 10 pairs, 2 discordant ((1,2) and (3,4)) -> (8-2)/10 = 0.6
    assert metrics.krcc(PRED, MOS) == pytest.approx(0.6, abs=1e-15)
    # pairwise: 8 of 10 pairs ordered right
    assert metrics.pairwise_accuracy(PRED, MOS) == pytest.approx(0.8, abs=1e-15)


def _pairwise_brute(p, t):
    right = total = 0.0
    for i, j in itertools.combinations(range(len(p)), 2):
        if t[i] == t[j]:
            continue
        total += 1
        if p[i] == p[j]:
            right += 0.5
        elif (p[i] - p[j]) * (t[i] - t[j]) > 0:
            right += 1
    return right / total


@pytest.mark.parametrize("seed", range(5))
def test_against_scipy_and_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = 37 + seed
    t = rng.integers(0, 6, n).astype(float)  # many ties in the target
    p = np.round(t + rng.normal(0, 2, n))  # and in the prediction
    assert metrics.plcc(p, t) == pytest.approx(stats.pearsonr(p, t).statistic, abs=1e-14)
    assert metrics.srcc(p, t) == pytest.approx(stats.spearmanr(p, t).statistic, abs=1e-14)
    assert metrics.krcc(p, t) == pytest.approx(stats.kendalltau(p, t).statistic, abs=1e-14)
    assert metrics.pairwise_accuracy(p, t) == pytest.approx(_pairwise_brute(p, t), abs=1e-12)


def test_undefined_cases_are_nan_or_half():
    const = [3.0] * 5
    assert math.isnan(metrics.plcc(const, MOS)) and math.isnan(metrics.srcc(MOS, const))
    assert math.isnan(metrics.krcc(const, MOS))
    assert metrics.pairwise_accuracy(const, MOS) == 0.5  # every pair is a tie: half credit, exactly
    assert math.isnan(metrics.pairwise_accuracy(MOS, const))  # no pair to order


@pytest.mark.parametrize("pred, target, message", [
    ([1.0, 2.0], [1.0, 2.0, 3.0], "same length, got 2 and 3"),
    ([[1.0, 2.0]], [[1.0, 2.0]], "must be 1-D"),
    ([1.0], [1.0], "at least 2 scored items"),
    ([1.0, float("nan")], [1.0, 2.0], "must be finite"),
])
def test_bad_inputs(pred, target, message):
    with pytest.raises(ValueError, match=message):
        metrics.plcc(pred, target)


def test_logistic_fit_recovers_known_curve():
    x = np.linspace(-3, 3, 41)
    true = (4.5, 1.2, 0.3, 0.7)
    y = metrics.logistic4(x, *true)
    fit = metrics.fit_logistic4(x, y)
    assert fit.ok and fit.message == "converged"
    b1, b2, b3, b4 = fit.params
    np.testing.assert_allclose([b1, b2, b3, abs(b4)], true, rtol=1e-6)
    value, _ = metrics.plcc_logistic(x, y)
    assert value == pytest.approx(1.0, abs=1e-12)
    assert metrics.plcc(x, y) < 0.99  # the raw PLCC of the same data is visibly lower: separate columns matter


def test_logistic_formula_and_init():
    # f(b3) is the midpoint; |b4| makes the sign of b4 irrelevant
    assert metrics.logistic4(2.0, 5.0, 1.0, 2.0, -0.5) == pytest.approx(3.0, abs=1e-15)
    assert metrics.logistic4(np.array([1e6]), 5.0, 1.0, 0.0, 1.0)[0] == pytest.approx(5.0, abs=1e-12)


def test_failed_fit_is_reported():
    fit = metrics.fit_logistic4([2.0] * 6, [1, 2, 3, 4, 5, 6])
    assert not fit.ok and fit.message == "predictions are constant"
    with pytest.raises(RuntimeError, match="the logistic fit failed: predictions are constant"):
        fit([1.0])
    # a budget of 1 function evaluation cannot converge: reported, not hidden
    bad = metrics.fit_logistic4(np.arange(8.0), np.array([0, 5, 1, 4, 2, 3, 9, 0.5]), maxfev=1)
    assert not bad.ok and "RuntimeError" in bad.message
    value, fit = metrics.plcc_logistic([2.0] * 6, [1, 2, 3, 4, 5, 6])
    assert math.isnan(value) and not fit.ok


def test_logistic_jacobian_matches_finite_differences():
    x = np.linspace(-2, 3, 9)
    params = np.array([4.0, 1.5, 0.4, -0.8])
    jac = metrics._logistic4_jac(x, *params)
    h = 1e-6
    for k in range(4):
        step = np.zeros(4)
        step[k] = h
        numeric = (metrics.logistic4(x, *(params + step)) - metrics.logistic4(x, *(params - step))) / (2 * h)
        np.testing.assert_allclose(jac[:, k], numeric, atol=1e-8, rtol=0)


def test_flat_and_non_converging_fits_are_reported():
    # found by search over random 6-point sets: the optimiser converges to a step left of every prediction, so the
    # mapped predictions are all equal; that is a failed fit, not a PLCC of NaN labelled "converged"
    x = [0.88, 0.32, 0.49, -0.17, 0.96, -1.52]
    y = [1.13, -0.29, -0.18, -1.06, -1.63, -0.46]
    value, fit = metrics.plcc_logistic(x, y)
    assert math.isnan(value) and not fit.ok and fit.message == "the fitted curve is flat over the predictions"
    x = [0.03, 1.36, 1.22, -0.51, -0.3, -0.53]
    y = [0.57, -0.06, 0.75, -1.85, 1.57, -0.1]
    value, fit = metrics.plcc_logistic(x, y)
    assert math.isnan(value) and fit.message.startswith("RuntimeError: Optimal parameters not found")
