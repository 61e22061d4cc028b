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
    argv = ["--out", str(tmp_path), "--config", "tiny", "--images", "2", "--rollouts", "2", "--max-new-tokens", "4",
            "--image-size", "28", "--steps", "1", "--micro-batch", "4", "--attn", "sdpa", "--workdir", str(tmp_path)]
    result = bench_train_step.measure(bench_train_step.build_parser().parse_args(argv))
    saved = json.loads((tmp_path / "bench_train_step.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert saved["steps_timed"] == 1 and saved["phases_s"]["total"]["p50"] > 0
    assert 0 <= saved["non_model_share"]["p50"] <= 1 and saved["tokens_per_s"]["p50"] > 0
    assert "| forward_backward |" in (tmp_path / "bench_train_step.md").read_text()
    # The suite's interface: one row per phase plus the non-model share, as the saved result says.
    rows = {r["op"]: r for r in bench_train_step.rows_of(result)}
    assert set(rows) == {f"train_step/{phase}" for phase in result["phases_s"]} | {"train_step/non_model"}
    assert rows["train_step/non_model"]["share_of_step"] == result["non_model_share"]["p50"]


def test_real_config_path_builds_saves_and_reloads(tmp_path, monkeypatch):
    """The 3b/7b code path (built in place in bf16, saved for the KL reference), on a shrunken spec on CPU."""
    from evoquality.modeling import load_policy

    small = {
        "text": dict(vocab_size=600, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, max_position_embeddings=2048, rms_norm_eps=1e-6, hidden_act="silu",
                     rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]}),
        "vision": dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                       patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                       fullatt_block_indexes=[1]),
        "tie_word_embeddings": True,
    }
    monkeypatch.setitem(bench_train_step.QWEN25_VL, "3b", small)
    model, processor, attn = bench_train_step.build_policy("3b", tmp_path, 56, "cpu", "sdpa", save=True)
    assert model.dtype == torch.bfloat16 and attn.implementation == "sdpa"
    assert model.config.text_config.vocab_size == 600 and model.config._name_or_path == str(tmp_path / "3b")
    reloaded = load_policy(tmp_path / "3b", device="cpu", dtype="bfloat16")
    for (n, a), (_, b) in zip(model.state_dict().items(), reloaded.model.state_dict().items()):
        assert torch.equal(a, b), n
