"""vLLM request construction and output handling, without vLLM (the engine itself runs in the GPU suite)."""

from dataclasses import dataclass

import pytest

from evoquality.labelling.backends import GenRequest
from evoquality.labelling.vllm_backend import build_sampling_params, build_vllm_inputs, collect_texts
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
