"""benchmarks/toy_ceiling.py: the series L-test on plain arrays, and the frozen-feature probe reproducing the recorded
figure (the probe's fit is deterministic: full-batch Adam from zero weights)."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import toy_ceiling  # noqa: E402


def test_series_ltest_is_the_mean_srcc_per_series():
    series = ["a"] * 5 + ["b"] * 5 + ["c"] * 2 + ["d"]  # a 1-image series has no SRCC to average
    levels = [1, 2, 3, 4, 5] * 2 + [1, 2] + [3]
    perfect = [5, 4, 3, 2, 1]
    reversed_ = [1, 2, 3, 4, 5]
    assert toy_ceiling._series_ltest(perfect + perfect + [1, 0] + [7], series, levels) == pytest.approx(1.0)
    assert toy_ceiling._series_ltest(perfect + reversed_ + [1, 0] + [7], series, levels) == pytest.approx(1 / 3)
    one_swap = [5, 4, 2, 3, 1]  # SRCC 0.9
    assert toy_ceiling._series_ltest(one_swap + perfect + [1, 0] + [7], series, levels) == pytest.approx(2.9 / 3)
    # As the report's L-test: an unscored image is left out, a series of equal scores counts 0.
    nan = float("nan")
    assert toy_ceiling._series_ltest([5, 4, nan, 2, 1] + [2] * 5 + [1, 0] + [7], series, levels) == pytest.approx(2 / 3)


def test_frozen_feature_probe_reproduces_the_recorded_figure(tmp_path):
    recorded = json.loads((ROOT / "benchmarks/results/2026-11-30-cpu-method/ceiling/features.json").read_text())
    result = toy_ceiling.features(tmp_path)
    assert result["n_pool"] == 240 and result["n_heldout"] == 600
    for key in ("pool_fit_on_pool", "pool_fit_on_heldout", "heldout_fit_on_heldout"):
        assert result[key] == pytest.approx(recorded[key], abs=0.02), key
    # What the finding rests on: a ranking fitted on the pool's frozen features carries to the held-out half of the
    # photos (0.51) far beyond the base model's own scores there (0.227): the features are not the cap.
    assert result["pool_fit_on_heldout"] > 0.45


def test_photo_summary_finds_a_photo_on_the_floor():
    # Two photos, one series each (one type, levels 1-5): "sky" ranked perfectly, "rock" scored 1 at every level.
    photos = ["sky"] * 5 + ["rock"] * 5
    types = ["blur"] * 10
    levels = [1, 2, 3, 4, 5] * 2
    series = ["sky/blur"] * 5 + ["rock/blur"] * 5
    scores = [4.0, 3.5, 3.0, 2.0, 1.05] + [1.0, 1.02, 1.0, 1.08, float("nan")]
    summary = toy_ceiling.photo_summary(photos, types, levels, series, scores)
    assert summary["sky"]["srcc"] == pytest.approx(1.0)
    assert summary["sky"]["floor_share"] == pytest.approx(0.2)  # only its worst image
    assert summary["sky"]["mean_by_level"] == {"blur": [4.0, 3.5, 3.0, 2.0, 1.05]}
    assert summary["rock"]["floor_share"] == pytest.approx(0.8)  # the unscored image is not on the floor
    assert summary["rock"]["mean_by_level"]["blur"][4] is None
    # What is left of its order: 1.0, 1.02, 1.0, 1.08 against levels 1-4 (the unscored level 5 left out).
    assert summary["rock"]["srcc"] == pytest.approx(-0.632, abs=1e-3)


def test_each_checkpoint_scores_the_base_once_and_every_finished_round_and_resumes(tmp_path):
    runs = [tmp_path / "a", tmp_path / "b"]
    for run, rounds in zip(runs, (2, 1)):
        for t in range(1, rounds + 1):
            model = run / f"round_{t:02d}" / "train" / "model"
            model.mkdir(parents=True)
            (model / "config.json").write_text("{}")
    (runs[1] / "round_03" / "train" / "model").mkdir(parents=True)  # after a missing round 2: not reached
    measured = []

    def measure(ckpt, run):
        measured.append((ckpt.parent.parent.name if ckpt.is_relative_to(run) else "base", run.name))
        return {"srcc": float(len(measured))}

    out = tmp_path / "rows.json"
    rows = toy_ceiling._each_checkpoint(out, runs, measure)
    assert measured == [("base", "a"), ("round_01", "a"), ("round_02", "a"), ("round_01", "b")]
    assert list(rows) == ["base", "a/round 1", "a/round 2", "b/round 1"] == list(json.loads(out.read_text()))
    assert toy_ceiling._each_checkpoint(out, runs, measure) == rows and len(measured) == 4  # nothing scored again
