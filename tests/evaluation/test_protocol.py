"""The protocol: direction flips, failures, bootstrap by group, WAVG, and the synthetic L/P/D tests by hand."""

import math

import numpy as np
import pytest

from evoquality.data.manifest import Header, Manifest, Record
from evoquality.evaluation import protocol


def _synthetic():
    """2 references x 2 types x 3 levels + the 2 pristine images."""
    recs = []
    for ref in ("r1", "r2"):
        recs.append(Record(image=f"{ref}.png", level=0, group=ref))
        for t in ("blur", "noise"):
            for lv in (1, 2, 3):
                recs.append(Record(image=f"{ref}_{t}_{lv}.png", ref=f"{ref}.png", dist_type=t, level=lv, group=ref))
    return Manifest(Header(name="synthetic"), recs)


def test_l_p_d_tests_by_hand():
    m = _synthetic()
    # per record order: r1, r1 blur 1..3, r1 noise 1..3, r2, r2 blur 1..3, r2 noise 1..3
    scores = np.array([
        9.0, 5.0, 4.0, 3.0, 5.0, 6.0, 1.0,   # r1: blur perfect; noise: levels 1,2 swapped
        2.0, 7.0, 7.0, 6.0, 3.0, 3.0, 3.0,   # r2: blur tie at 1-2; noise constant
    ])
    lt = protocol.l_test(m, scores)
    # SRCC(score, -level): r1 blur 1; r1 noise: scores (5,6,1) vs (-1,-2,-3) -> ranks (2,3,1) vs (3,2,1): 0.5;
    # r2 blur (7,7,6): ranks (2.5,2.5,1) vs (3,2,1) -> 0.866..; r2 noise constant -> 0 (counted)
    r2_blur = np.corrcoef([2.5, 2.5, 1], [3, 2, 1])[0, 1]
    assert lt["l_test"] == pytest.approx((1 + 0.5 + r2_blur + 0) / 4, abs=1e-12)
    assert lt["per_type"] == pytest.approx({"blur": (1 + r2_blur) / 2, "noise": 0.25}, abs=1e-12)
    assert (lt["n_groups"], lt["constant"], lt["too_small"]) == (4, 1, 0)

    pt = protocol.p_test(m, scores)
    # pairs right: r1 blur 3, r1 noise 2 (1-3, 2-3), r2 blur 2 + 0.5 (tie), r2 noise 3 * 0.5
    assert pt["n_pairs"] == 12
    assert pt["p_test"] == pytest.approx((3 + 2 + 2.5 + 1.5) / 12, abs=1e-15)
    assert pt["per_type"] == pytest.approx({"blur": 5.5 / 6, "noise": 3.5 / 6}, abs=1e-15)

    dt = protocol.d_test(m, scores)
    # pristine {9, 2}; distorted 12 scores. AUC: 9 beats all 12; 2 beats 1 only -> (12 + 1) / 24
    assert dt["auc"] == pytest.approx(13 / 24, abs=1e-15)
    # threshold 7: pristine above = 1/2, distorted at/below = 12/12 -> 0.75 (no threshold does better)
    assert dt["d_test"] == pytest.approx(0.75, abs=1e-15)
    assert (dt["n_pristine"], dt["n_distorted"]) == (2, 12)


def test_failed_scores_are_dropped_and_counted():
    m = _synthetic()
    scores = np.arange(14, 0, -1, dtype=float)
    scores[[1, 8]] = np.nan
    out = protocol.evaluate(m, scores, n_boot=0)
    assert out["n_failed"] == 2 and out["n"] == 14
    assert out["l_test"] == pytest.approx(1.0) and out["p_test"] == pytest.approx(1.0)
    assert out["n_pairs"] == 12 - 2 - 2
    assert "plcc" not in out  # no MOS in a synthetic set


def test_mos_set_direction_and_ci():
    rng = np.random.default_rng(0)
    mos = rng.uniform(0, 1, 60)
    pred = -mos + rng.normal(0, 0.1, 60)  # a good model on a lower-better (DMOS) set
    recs = [Record(image=f"{i}.png", mos=float(m), group=f"ref{i // 6}") for i, m in enumerate(mos)]
    dmos = Manifest(Header(name="csiq", higher_better=False), recs)
    out = protocol.evaluate(dmos, pred, n_boot=200, seed=1)
    assert out["plcc"] == pytest.approx(-np.corrcoef(pred, mos)[0, 1], abs=1e-12) and out["plcc"] > 0.9
    assert out["srcc"] > 0.9 and out["krcc"] > 0.7 and out["pairwise"] > 0.85
    assert out["plcc_logistic"] >= out["plcc"] - 1e-9 and out["logistic_fit"] == "converged"
    lo, hi = out["ci95"]["srcc"]
    assert lo < out["srcc"] < hi
    assert out["ci95"] == protocol.evaluate(dmos, pred, n_boot=200, seed=1)["ci95"]  # seeded


def test_bootstrap_resamples_whole_groups():
    # two groups, each internally perfectly ordered but offset: any resample of whole groups keeps SRCC high,
    # while item-level resampling would too; the check is that a single-group resample gives the in-group value.
    pred = np.array([0.0, 1.0, 2.0, 10.0, 11.0, 12.0])
    target = np.array([0.0, 1.0, 2.0, 0.5, 1.5, 2.5])
    ci = protocol.bootstrap_ci(pred, target, ["a", "a", "a", "b", "b", "b"], stats_names=("srcc",), n_boot=300)
    assert ci["srcc"][1] == pytest.approx(1.0)  # resamples of one group only: perfect order
    assert ci["srcc"][0] == pytest.approx(np.corrcoef([1, 2, 3, 4, 5, 6], [1, 3, 5, 2, 4, 6])[0, 1])
    with pytest.raises(ValueError, match="groups must have length 6"):
        protocol.bootstrap_ci(pred, target, ["a"], n_boot=3)
    with pytest.raises(ValueError, match="stats_names must be among"):
        protocol.bootstrap_ci(pred, target, stats_names=("auc",), n_boot=3)


def test_wavg():
    assert protocol.wavg([0.5, 0.8], [100, 300]) == pytest.approx(0.725, abs=1e-15)
    assert math.isnan(protocol.wavg([0.5, float("nan")], [1, 1]))
    with pytest.raises(ValueError, match="sizes must be positive"):
        protocol.wavg([0.5], [0])
    with pytest.raises(ValueError, match="equal-length"):
        protocol.wavg([0.5, 0.2], [1])


def test_scores_shape_checked():
    m = _synthetic()
    with pytest.raises(ValueError, match=r"scores must have shape \(14,\) to match the manifest, got \(3,\)"):
        protocol.evaluate(m, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="finite or NaN"):
        protocol.evaluate(m, [np.inf] * 14)
