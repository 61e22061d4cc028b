import json
import logging
import shutil

import pytest
import torch

from evoquality.modeling import CheckpointError, inspect_checkpoint, load_policy
from evoquality.tiny_model import make_tiny_model


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_policy(tmp_path / "nope")


def test_file_instead_of_directory(tmp_path):
    f = tmp_path / "model.bin"
    f.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="is a file"):
        load_policy(f)


def test_directory_without_config(tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        load_policy(tmp_path)


def test_unsupported_architecture(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(CheckpointError, match="unsupported architecture.*'llama'"):
        load_policy(tmp_path)


def test_config_without_weights(tmp_path, tiny_model_dir):
    shutil.copy(tiny_model_dir / "config.json", tmp_path / "config.json")
    with pytest.raises(CheckpointError, match="no weights"):
        inspect_checkpoint(tmp_path)


def test_corrupt_config(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        inspect_checkpoint(tmp_path)


def test_flash_attention_request_on_cpu_falls_back_with_message(tiny_model_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="evoquality.modeling"):
        policy = load_policy(tiny_model_dir, attn_implementation="flash_attention_2")
    assert policy.attn.implementation == "sdpa"
    assert policy.model.config._attn_implementation == "sdpa"
    assert "falling back to sdpa" in caplog.text


def _logits(policy, seed=0):
    from PIL import Image
    import numpy as np

    from evoquality.prompts import score_messages
    from evoquality.sampling import build_inputs

    img = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (70, 90, 3), dtype=np.uint8))
    inputs = build_inputs(policy, [(score_messages(), [img])])
    with torch.no_grad():
        return policy.model(**inputs).logits


def test_tiny_model_save_reload_identical_logits(tiny_model_dir, tmp_path):
    policy = load_policy(tiny_model_dir)
    assert policy.model_type == "qwen2_5_vl"
    assert policy.model.dtype == torch.float32
    policy.model.save_pretrained(tmp_path)
    policy.processor.save_pretrained(tmp_path)
    reloaded = load_policy(tmp_path)
    assert torch.equal(_logits(policy), _logits(reloaded))


def test_tiny_model_is_deterministic_for_a_seed(tmp_path, tiny_model_dir):
    make_tiny_model(tmp_path / "a", seed=0)
    make_tiny_model(tmp_path / "b", seed=1)
    a, b, base = (load_policy(p) for p in (tmp_path / "a", tmp_path / "b", tiny_model_dir))
    assert torch.equal(_logits(a), _logits(base))
    assert not torch.equal(_logits(a), _logits(b))
    assert a.processor.tokenizer.get_vocab() == base.processor.tokenizer.get_vocab()


def test_tiny_processor_has_qwen_special_tokens(tiny_model_dir):
    policy = load_policy(tiny_model_dir)
    tok, cfg = policy.processor.tokenizer, policy.model.config
    assert tok.convert_tokens_to_ids("<|image_pad|>") == cfg.image_token_id
    assert tok.convert_tokens_to_ids("<|vision_start|>") == cfg.vision_start_token_id
    assert policy.processor.image_processor.size["longest_edge"] == 112 * 112


def test_dtype_option(tiny_model_dir):
    assert load_policy(tiny_model_dir, dtype="bfloat16").model.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="dtype must be one of"):
        load_policy(tiny_model_dir, dtype="int8")


def test_policy_preprocesses_through_the_native_pipeline(tiny_model_dir):
    from evoquality.io.processor import NativeQwen2VLImageProcessor

    policy = load_policy(tiny_model_dir)
    assert isinstance(policy.processor.image_processor, NativeQwen2VLImageProcessor)
    assert policy.processor.image_processor.size["longest_edge"] == 112 * 112


def test_tiny_model_heads_fit_vllm_cpu(tiny_model_dir):
    """vLLM derives head_dim as hidden_size / heads and its CPU attention supports 32, 64, 80, ... (not 16)."""
    text = json.loads((tiny_model_dir / "config.json").read_text())["text_config"]
    assert text["head_dim"] == text["hidden_size"] // text["num_attention_heads"] == 32
    assert sum(text["rope_parameters"]["mrope_section"]) == text["head_dim"] // 2
