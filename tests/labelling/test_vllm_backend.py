"""vLLM request construction, engine arguments and output handling, without vLLM (the engine itself runs in the
tests marked `vllm`, test_vllm_engine.py)."""

from dataclasses import dataclass

import pytest

from evoquality.labelling.backends import GenRequest
from evoquality.labelling.config import LabelConfig
from evoquality.labelling.vllm_backend import (
    DEFAULT_CPU_KV_CACHE_BYTES,
    VLLMBackend,
    build_sampling_params,
    build_vllm_inputs,
    check_engine_args,
    collect_texts,
    engine_kwargs,
    parse_engine_arg,
)
from evoquality.prompts import compare_messages


def _render(messages):
    # What a Qwen2-VL chat template produces for image placeholders.
    parts = ["<|vision_start|><|image_pad|><|vision_end|>" if c["type"] == "image" else c["text"]
             for m in messages for c in m["content"]]
    return "<|im_start|>user\n" + "".join(parts) + "<|im_end|>\n<|im_start|>assistant\n"


def _requests():
    msgs = compare_messages()
    return [GenRequest(msgs, ("A", "B"), 3, seed=11), GenRequest(msgs, ("B", "A"), 2, seed=12)]


def test_inputs_carry_both_images_in_shown_order():
    inputs = build_vllm_inputs(_requests(), _render)
    assert [i["multi_modal_data"]["image"] for i in inputs] == [["A", "B"], ["B", "A"]]
    assert inputs[0]["prompt"].count("<|image_pad|>") == 2
    assert inputs[0]["prompt"].endswith("<|im_start|>assistant\n")


def test_inputs_refuse_marker_mismatch():
    with pytest.raises(ValueError, match="request 0: the rendered prompt has 1 image markers but 2 images"):
        build_vllm_inputs(_requests(), lambda m: "<|image_pad|>")


@dataclass
class FakeSamplingParams:
    n: int
    temperature: float
    top_p: float
    top_k: int
    max_tokens: int
    seed: int


def test_sampling_params_one_per_request():
    params = build_sampling_params(_requests(), FakeSamplingParams, max_new_tokens=64, temperature=1.0)
    assert params == [FakeSamplingParams(3, 1.0, 1.0, -1, 64, 11), FakeSamplingParams(2, 1.0, 1.0, -1, 64, 12)]


@dataclass
class Completion:
    index: int
    text: str


@dataclass
class RequestOutput:
    outputs: list


def test_collect_texts_orders_by_completion_index():
    outs = [RequestOutput([Completion(2, "c"), Completion(0, "a"), Completion(1, "b")]),
            RequestOutput([Completion(0, "x"), Completion(1, "y")])]
    assert collect_texts(_requests(), outs) == [["a", "b", "c"], ["x", "y"]]


def test_collect_texts_rejects_short_or_missing_outputs():
    short = [RequestOutput([Completion(0, "a"), Completion(1, "b")]),
             RequestOutput([Completion(0, "x"), Completion(1, "y")])]
    with pytest.raises(RuntimeError, match="returned 2 completions for request 0, wanted 3"):
        collect_texts(_requests(), short)
    with pytest.raises(RuntimeError, match="returned 1 results for 2 requests"):
        collect_texts(_requests(), short[:1])
    gap = [RequestOutput([Completion(0, "a"), Completion(2, "b"), Completion(3, "c")]), short[1]]
    with pytest.raises(RuntimeError, match="completion indices"):
        collect_texts(_requests(), gap)


# Engine arguments: EvoQuality's options, the CPU defaults, and what users pass through.

def test_engine_kwargs_on_cpu_disable_chunked_prefill_and_size_the_kv_cache():
    kw = engine_kwargs("m", on_cpu=True, seed=3, environ={})
    assert kw["enable_chunked_prefill"] is False
    assert kw["kv_cache_memory_bytes"] == DEFAULT_CPU_KV_CACHE_BYTES == 4 * 1024**3
    assert (kw["model"], kw["seed"], kw["limit_mm_per_prompt"]) == ("m", 3, {"image": 2})
    # VLLM_CPU_KVCACHE_SPACE (read by vLLM itself) or an explicit size replace the default.
    assert "kv_cache_memory_bytes" not in engine_kwargs("m", on_cpu=True, environ={"VLLM_CPU_KVCACHE_SPACE": "2"})
    kw = engine_kwargs("m", on_cpu=True, environ={}, engine_args={"kv_cache_memory_bytes": 1 << 28})
    assert kw["kv_cache_memory_bytes"] == 1 << 28


def test_engine_kwargs_on_gpu_keep_vllm_defaults_and_the_memory_share():
    kw = engine_kwargs("m", on_cpu=False, gpu_memory_utilization=0.3, environ={})
    assert kw["gpu_memory_utilization"] == 0.3
    assert "enable_chunked_prefill" not in kw and "kv_cache_memory_bytes" not in kw
    assert engine_kwargs("m", on_cpu=False, environ={})["gpu_memory_utilization"] == 0.85


def test_engine_args_pass_through_and_override_our_defaults():
    extra = {"max_model_len": 4096, "enable_prefix_caching": False, "limit_mm_per_prompt": {"image": 4}}
    kw = engine_kwargs("m", on_cpu=False, engine_args=extra, environ={})
    assert {k: kw[k] for k in extra} == extra


def test_engine_args_refuse_chunked_prefill_on_cpu_and_our_own_options():
    with pytest.raises(ValueError, match="enable_chunked_prefill=True crashes vLLM on CPU"):
        engine_kwargs("m", on_cpu=True, engine_args={"enable_chunked_prefill": True}, environ={})
    assert engine_kwargs("m", on_cpu=False, engine_args={"enable_chunked_prefill": True},
                         environ={})["enable_chunked_prefill"] is True
    for key in ("model", "seed", "dtype", "tensor_parallel_size", "gpu_memory_utilization"):
        with pytest.raises(ValueError, match=f"vllm_engine_args: '{key}' is set by EvoQuality's own option"):
            check_engine_args({key: 1})
    with pytest.raises(ValueError, match="vllm_engine_args: 'max model len' is not an engine argument name"):
        check_engine_args({"max model len": 1})
    with pytest.raises(ValueError, match="must be a mapping"):
        check_engine_args("max_model_len=3")


def test_unknown_engine_args_are_named_with_the_closest_fields():
    known = ["max_model_len", "max_num_seqs", "enable_prefix_caching"]
    check_engine_args({"max_model_len": 1}, known=known)
    with pytest.raises(ValueError, match="'max_model_length' is not an argument of this vLLM's EngineArgs; "
                                         "did you mean 'max_model_len'"):
        check_engine_args({"max_model_length": 1}, known=known)


@pytest.mark.parametrize("text, expected", [
    ("max_model_len=4096", ("max_model_len", 4096)),
    ("max-num-seqs=8", ("max_num_seqs", 8)),
    ("enable_prefix_caching=false", ("enable_prefix_caching", False)),
    ("kv_cache_memory_bytes=1.5e9", ("kv_cache_memory_bytes", 1.5e9)),
    ('limit_mm_per_prompt={"image": 4}', ("limit_mm_per_prompt", {"image": 4})),
    ("quantization=fp8", ("quantization", "fp8")),
    ("served_model_name=a=b", ("served_model_name", "a=b")),
])
def test_parse_engine_arg(text, expected):
    assert parse_engine_arg(text) == expected


def test_parse_engine_arg_needs_key_and_value():
    for text in ("max_model_len", "=3"):
        with pytest.raises(ValueError, match=f"expected KEY=VALUE, got {text!r}"):
            parse_engine_arg(text)


def test_label_config_validates_engine_args(tmp_path):
    base = dict(model="m", images="i", out=str(tmp_path))
    LabelConfig(**base, backend="vllm", vllm_engine_args={"max_model_len": 2048}).validate()
    with pytest.raises(ValueError, match="vllm_engine_args are only used by backend 'vllm', not 'transformers'"):
        LabelConfig(**base, vllm_engine_args={"max_model_len": 2048}).validate()
    with pytest.raises(ValueError, match="'seed' is set by EvoQuality's own option"):
        LabelConfig(**base, backend="vllm", vllm_engine_args={"seed": 1}).validate()
    with pytest.raises(ValueError, match=r"gpu_memory_utilization must be in \(0, 1\], got 1.5"):
        LabelConfig(**base, backend="vllm", gpu_memory_utilization=1.5).validate()
    # How the engine runs does not change what a stored vote means: not part of the round's fingerprint.
    cfg = LabelConfig(**base, backend="vllm", vllm_engine_args={"max_model_len": 2048})
    assert "vllm_engine_args" not in cfg.fingerprint("digest", 3)


def test_cli_collects_repeated_engine_args(monkeypatch, capsys):
    import evoquality.labelling.runner as runner
    from evoquality.cli import main

    seen = []
    monkeypatch.setattr(runner, "run_labelling", lambda cfg: seen.append(cfg))
    args = ["label", "--model", "m", "--images", "i", "--out", "o", "--backend", "vllm",
            "--vllm-engine-arg", "max-model-len=4096", "--vllm-engine-arg", "enable_prefix_caching=false"]
    assert main(args) == 0
    (cfg,) = seen
    assert cfg.vllm_engine_args == {"max_model_len": 4096, "enable_prefix_caching": False}
    # The default backend (the one `label`, `evolve` and the API use) is built from the whole config, engine
    # arguments included.
    built = []
    monkeypatch.setattr(VLLMBackend, "from_config", classmethod(lambda cls, c: built.append(c) or "engine"))
    assert runner.default_backend_factory(cfg, None) == "engine" and built == [cfg]
    assert main(args + ["--vllm-engine-arg", "max_model_len=8"]) == 2
    assert "vllm_engine_args: 'max_model_len' is given twice" in capsys.readouterr().err
    assert main(args[:-4] + ["--vllm-engine-arg", "max_model_len"]) == 2
    assert "expected KEY=VALUE, got 'max_model_len'" in capsys.readouterr().err


def test_evolve_passes_repeated_engine_args_to_every_rounds_labelling(tmp_path):
    import argparse

    from evoquality.commands import evolve

    parser = argparse.ArgumentParser()
    evolve.add_arguments(parser)
    args = parser.parse_args(["--model", "m", "--images", "i", "--out", str(tmp_path), "--label-backend", "vllm",
                              "--label-vllm-engine-args", "max_model_len=4096",
                              "--label-vllm-engine-args", "enforce-eager=true"])
    settings = evolve.settings_from_args(args)
    assert settings.label["vllm_engine_args"] == {"max_model_len": 4096, "enforce_eager": True}
    assert "vllm_engine_args" not in evolve.settings_from_args(
        parser.parse_args(["--model", "m", "--images", "i", "--out", str(tmp_path)])).label
