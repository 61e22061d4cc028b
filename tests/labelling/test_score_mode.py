"""Score-mode labelling with a scripted backend: p* from the win-matrix op equals a brute-force K x K count."""

import itertools

import numpy as np
import pytest

from evoquality.labelling import read_labels
from evoquality.labelling.config import LabelConfig
from evoquality.labelling.dist import Dist
from evoquality.labelling.runner import run_labelling
from evoquality.labelling.store import RoundDir


def _ids(row):
    return int(row["image_i"].rsplit("im", 1)[1][:-4]), int(row["image_j"].rsplit("im", 1)[1][:-4])


def noisy_score(img_id, _, rng):
    # Scores on a coarse grid so that ties occur; image 5 never answers in format.
    if img_id == 5:
        return "no score"
    return f"\\boxed{{{1 + 0.5 * rng.integers(0, 3) + 0.25 * img_id:.2f}}}"


def _run(tiny_model_dir, pool, out, backend, **kw):
    cfg = LabelConfig(model=str(tiny_model_dir), images=str(pool), out=str(out), mode="score", votes=7,
                      batch_items=3, max_new_tokens=8, progress=False, **{"pairs": 12, **kw})
    return run_labelling(cfg, backend_factory=lambda c, d: backend, dist=Dist())


def test_score_mode_matches_brute_force(tiny_model_dir, id_pool, tmp_path, scripted):
    backend = scripted(noisy_score)
    summary = _run(tiny_model_dir, id_pool, tmp_path / "r", backend, label="soft")
    # Only the images of the sampled pairs are scored, each once with n = K.
    reqs = [r for call in backend.calls for r in call]
    assert all(r.n == 7 and len(r.images) == 1 for r in reqs)
    assert len(reqs) == summary["images_scored"] <= 8
    records = RoundDir(tmp_path / "r").read_records()
    by_id = {}
    pool_paths = sorted(str(p) for p in id_pool.iterdir())
    for item, rec in records.items():
        by_id[int(pool_paths[item].rsplit("im", 1)[1][:-4])] = [s for s in rec["scores"] if s is not None]
    labels = read_labels(tmp_path / "r")
    assert len(labels) == 12
    for row in labels:
        i, j = _ids(row)
        a, b = by_id[i], by_id[j]
        if not a or not b:  # image 5 has no valid score: no p*, a tie by default
            assert row["p_star"] == 0.5 and row["p_win"] is None and row["votes_i"] == row["votes_j"] == 0
            continue
        gt = sum(x > y for x, y in itertools.product(a, b))
        lt = sum(x < y for x, y in itertools.product(a, b))
        assert (row["votes_i"], row["votes_j"]) == (gt, lt)
        expected = (gt + 0.5 * (len(a) * len(b) - gt - lt)) / (len(a) * len(b))
        assert row["p_star"] == pytest.approx(expected, rel=1e-6, abs=0)
        assert row["invalid"] == 14 - len(a) - len(b)
    assert summary["pairs_no_valid_votes"] == sum(r["p_win"] is None for r in labels)
    assert summary["parse_failure_rate"] == pytest.approx(
        sum(7 - len(v) for v in by_id.values()) / (7 * len(by_id)), abs=0)


def test_score_mode_all_pairs_hard_labels(tiny_model_dir, id_pool, tmp_path, scripted):
    separated = lambda img_id, _, rng: f"\\boxed{{{1 + 0.5 * img_id}}}"  # noqa: E731  (clipped at 5 for id >= 8)
    summary = _run(tiny_model_dir, id_pool, tmp_path / "r", scripted(separated), pairs=0, score_pairs="all")
    labels = read_labels(tmp_path / "r")
    assert len(labels) == 28 and summary["images_scored"] == 8
    for row in labels:
        i, j = _ids(row)
        assert row["p_star"] == float(i > j)
        assert (row["votes_i"], row["votes_j"]) == ((49, 0) if i > j else (0, 49))
    assert np.isclose(summary["p_star_mean"], np.mean([r["p_star"] for r in labels]))


def test_score_mode_mean_label_compares_mean_scores(tiny_model_dir, id_pool, tmp_path, scripted):
    """label='mean' (score averaging, the EvoEstimate ablation): p* from the two images' mean valid scores."""
    _run(tiny_model_dir, id_pool, tmp_path / "r", scripted(noisy_score), label="mean")
    records = RoundDir(tmp_path / "r").read_records()
    pool_paths = sorted(str(p) for p in id_pool.iterdir())
    by_id = {int(pool_paths[k].rsplit("im", 1)[1][:-4]): [s for s in rec["scores"] if s is not None]
             for k, rec in records.items()}
    labels = read_labels(tmp_path / "r")
    decided = 0
    for row in labels:
        a, b = (by_id[k] for k in _ids(row))
        if not a or not b:
            assert row["p_star"] == 0.5
            continue
        ma, mb = np.mean(a), np.mean(b)
        assert row["p_star"] == (1.0 if ma > mb else 0.0 if ma < mb else 0.5)
        decided += ma != mb
    assert decided >= 6


def test_mean_label_needs_score_mode(tiny_model_dir, id_pool, tmp_path):
    with pytest.raises(ValueError, match="label 'mean' .* needs mode 'score'"):
        LabelConfig(model=str(tiny_model_dir), images=str(id_pool), out=str(tmp_path), mode="compare",
                    label="mean").validate()
