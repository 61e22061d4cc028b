"""GPU checks of stage 1 (skipped without a CUDA device): the transformers backend on CUDA, and the vLLM backend
end to end where vllm is installed."""

import shutil

import pytest
from PIL import Image

from evoquality.labelling import read_labels
from evoquality.labelling.config import LabelConfig
from evoquality.labelling.dist import Dist
from evoquality.labelling.runner import run_labelling

pytestmark = pytest.mark.gpu


@pytest.fixture
def pool(tmp_path):
    folder = tmp_path / "pool"
    folder.mkdir()
    for k in range(5):
        Image.effect_mandelbrot((64 + 8 * k, 56), (-2, -1.2, 1, 1.2), 20 + 10 * k).convert("RGB").save(
            folder / f"m{k}.png")
    return folder


def _cfg(model, pool, out, **kw):
    return LabelConfig(model=str(model), images=str(pool), out=str(out), pairs=6, votes=8, batch_items=3,
                       max_new_tokens=16, progress=False, save_answers=True, **kw)


def test_transformers_backend_on_cuda_resumes_identically(tiny_model_dir, pool, tmp_path):
    full = run_labelling(_cfg(tiny_model_dir, pool, tmp_path / "full", device="cuda"), dist=Dist(device="cuda"))
    assert full["pairs_labelled"] == 6 and full["votes_total"] == 48
    # A copy that lost everything after the first batch (as after a kill) resumes to the same labels: generation
    # is seeded per batch, so batch 1 reproduces its answers on the same device.
    cut = tmp_path / "cut"
    shutil.copytree(tmp_path / "full", cut)
    shard = cut / "votes" / "rank-00000.jsonl"
    shard.write_text("".join(shard.read_text().splitlines(keepends=True)[:3]))
    (cut / "labels.jsonl").unlink()
    run_labelling(_cfg(tiny_model_dir, pool, cut, device="cuda"), dist=Dist(device="cuda"))
    assert read_labels(cut) == read_labels(tmp_path / "full")


def test_vllm_backend_end_to_end(tiny_model_dir, pool, tmp_path):
    pytest.importorskip("vllm")
    s = run_labelling(_cfg(tiny_model_dir, pool, tmp_path / "v", backend="vllm", gpu_memory_utilization=0.3),
                      dist=Dist(device="cuda"))
    assert s["pairs_labelled"] == 6 and s["votes_total"] == 48
    labels = read_labels(tmp_path / "v")
    assert all(r["votes_i"] + r["votes_j"] + r["invalid"] == 8 for r in labels)
