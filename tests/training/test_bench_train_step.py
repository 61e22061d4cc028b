"""benchmarks/bench_train_step.py: the transcribed Qwen2.5-VL configs have the published sizes, and the CPU run
writes its report."""

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_train_step  # noqa: E402


@pytest.mark.parametrize("name, billions, vision", [("3b", 3.754622976, 0.668684288), ("7b", 8.292166656, 0.676550144)])
def test_real_configs_have_the_published_parameter_counts(tiny_model_dir, name, billions, vision):
    from transformers import Qwen2_5_VLForConditionalGeneration

    from evoquality.processing import load_processor

    config = bench_train_step.real_config(name, load_processor(tiny_model_dir).tokenizer)
    with torch.device("meta"):  # sizes only, no memory
        model = Qwen2_5_VLForConditionalGeneration(config)
    # Published: Qwen2.5-VL-3B-Instruct 3.75 B, Qwen2.5-VL-7B-Instruct 8.29 B parameters.
    assert sum(p.numel() for p in model.parameters()) == round(billions * 1e9)
    assert sum(p.numel() for p in model.model.visual.parameters()) == round(vision * 1e9)
    text = config.text_config
    assert sum(text.rope_parameters["mrope_section"]) * 2 == text.hidden_size // text.num_attention_heads == 128


@pytest.mark.slow
def test_cpu_run_writes_json_and_markdown(tmp_path):
    result = bench_train_step.run(bench_train_step.argparse.Namespace(
        out=str(tmp_path), config="tiny", images=2, rollouts=2, max_new_tokens=4, image_size=28, steps=1,
        micro_batch=4, beta=0.05, attn="sdpa", workdir=str(tmp_path)))
    saved = json.loads((tmp_path / "bench_train_step.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert saved["steps_timed"] == 1 and saved["phases_s"]["total"]["p50"] > 0
    assert 0 <= saved["non_model_share"]["p50"] <= 1 and saved["tokens_per_s"]["p50"] > 0
    assert "| forward_backward |" in (tmp_path / "bench_train_step.md").read_text()
