"""Stage 1 on a real vLLM engine (marker `vllm`: runs wherever the vllm package is installed — a GPU server, or a
CPU build of vLLM — and skips elsewhere). One engine over the tiny Qwen2.5-VL serves every test of this module:
starting one takes ~30-100 s on a CPU."""

import pytest
from PIL import Image

from evoquality.labelling import read_labels
from evoquality.labelling.backends import GenRequest
from evoquality.labelling.config import LabelConfig
from evoquality.labelling.dist import Dist
from evoquality.labelling.runner import run_labelling
from evoquality.labelling.store import RoundDir
from evoquality.prompts import compare_messages

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    from evoquality.labelling.vllm_backend import VLLMBackend

    # A small share on a GPU the suite shares; a CPU build sizes its KV cache by bytes instead (our 4 GiB default).
    return VLLMBackend(str(tiny_model_dir), seed=0, gpu_memory_utilization=0.3, engine_args={"max_model_len": 1024})


@pytest.fixture(scope="module")
def images():
    return [Image.effect_mandelbrot((56 + 8 * k, 48), (-2, -1.2, 1, 1.2), 20 + 10 * k).convert("RGB")
            for k in range(4)]


def test_engine_arguments_reach_the_engine(backend):
    from vllm.platforms import current_platform

    config = backend.llm.llm_engine.vllm_config
    assert config.model_config.max_model_len == 1024  # passed through vllm_engine_args
    if current_platform.is_cpu():
        assert config.scheduler_config.enable_chunked_prefill is False
        assert config.cache_config.kv_cache_memory_bytes == 4 * 1024**3


def test_a_request_answers_the_same_alone_or_in_a_batch(backend, images):
    """Per-request seeds (kept on CPU by prefilling whole prompts): answers depend on the request, not its batch."""
    requests = [GenRequest(compare_messages(), (images[k], images[k + 1]), 3, seed=50 + k) for k in range(3)]
    kw = dict(max_new_tokens=12, temperature=1.0, batch_seed=0)
    batch = backend.generate(requests, **kw)
    assert [len(t) for t in batch] == [3, 3, 3]
    assert backend.generate(requests[2:], **kw) == batch[2:]
    assert backend.generate(requests[:1], **kw) == batch[:1]


def test_stage1_end_to_end(backend, tiny_model_dir, tmp_path):
    pool = tmp_path / "pool"
    pool.mkdir()
    for k in range(5):
        Image.effect_mandelbrot((64 + 8 * k, 56), (-2, -1.2, 1, 1.2), 20 + 10 * k).convert("RGB").save(
            pool / f"m{k}.png")
    cfg = LabelConfig(model=str(tiny_model_dir), images=str(pool), out=str(tmp_path / "round"), backend="vllm",
                      pairs=6, votes=4, batch_items=3, max_new_tokens=12, progress=False, save_answers=True)
    summary = run_labelling(cfg, backend_factory=lambda cfg, dist: backend, dist=Dist())
    assert summary["pairs_labelled"] == 6 and summary["votes_total"] == 24
    assert all(r["votes_i"] + r["votes_j"] + r["invalid"] == 4 for r in read_labels(tmp_path / "round"))
    assert all(len(r["texts"]) == 4 for r in RoundDir(tmp_path / "round").read_records().values())
