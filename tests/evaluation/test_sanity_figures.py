"""The sanity figures of docs/datasets.md on the default synthetic benchmark (8 bundled photos x 5 types x 5
levels): a PSNR oracle is perfect, PIQE (no learned weights) orders ~95 % of the pairs — the bar a useful quality
model must beat."""

import pytest

from evoquality.data.synthetic import DEFAULT_TYPES, build_synthetic_benchmark
from evoquality.evaluation.runner import evaluate_manifest

pytest.importorskip("skimage", reason="the bundled reference photos come from scikit-image (test extra)")


def test_psnr_oracle_and_piqe_on_default_benchmark(tmp_path):
    # 128 px keeps the test at a few seconds; at native size PIQE's P-test is 0.97 (measured), at 128 px 0.94.
    m = build_synthetic_benchmark(tmp_path, types=DEFAULT_TYPES, seed=0, size=128)
    assert len(m) == 8 + 8 * 5 * 5 and m.header.skipped == {}
    entry, _ = evaluate_manifest(m, None, ["psnr", "piqe"], n_boot=0, seed=0, progress=False)
    psnr, piqe = entry["rows"]["PSNR (oracle)"], entry["rows"]["PIQE"]
    assert psnr["l_test"] == pytest.approx(1.0, abs=1e-12)
    assert (psnr["p_test"], psnr["d_test"], psnr["auc"]) == (1.0, 1.0, 1.0)
    assert psnr["n_groups"] == 40 and psnr["n_pairs"] == 40 * 10
    assert piqe["p_test"] >= 0.93 and piqe["l_test"] >= 0.9
    assert piqe["p_per_type"]["white_noise"] == 1.0
