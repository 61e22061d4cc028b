import numpy as np
import pytest
from PIL import Image

from evoquality.modeling import load_policy
from evoquality.prompts import compare_messages, score_messages
from evoquality.sampling import sample_completions


@pytest.fixture(scope="module")
def policy(tiny_model_dir):
    return load_policy(tiny_model_dir)


def _image(h, w, seed):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_n_completions_per_request_with_images(policy):
    requests = [
        (score_messages(), [_image(60, 80, 0)]),
        (compare_messages(), [_image(40, 100, 1), _image(90, 50, 2)]),
        (score_messages(), [_image(112, 112, 3)]),
    ]
    results = sample_completions(policy, requests, n=4, max_new_tokens=12, batch_size=2, seed=0)
    assert len(results) == 3
    for res in results:
        assert len(res.texts) == len(res.token_ids) == 4
        assert all(len(ids) <= 12 for ids in res.token_ids)
        assert all(isinstance(t, str) for t in res.texts)
    # Sampling at temperature 1 from a random model: the 4 answers are not all identical.
    assert len({tuple(ids) for ids in results[0].token_ids}) > 1


def test_same_seed_same_samples(policy):
    req = [(score_messages(), [_image(60, 80, 0)])]
    a = sample_completions(policy, req, n=3, max_new_tokens=10, seed=123)
    b = sample_completions(policy, req, n=3, max_new_tokens=10, seed=123)
    assert a[0].token_ids == b[0].token_ids


def test_one_vision_encode_and_prefill_per_batch(policy):
    # K answers come from one prefill: the vision tower runs once per generate call, not once per sample.
    calls = []
    handle = policy.model.model.visual.register_forward_hook(lambda *a: calls.append(1))
    try:
        sample_completions(policy, [(score_messages(), [_image(56, 56, 0)])] * 3, n=5, max_new_tokens=6,
                           batch_size=3, seed=0)
    finally:
        handle.remove()
    assert len(calls) == 1


def test_greedy_is_deterministic_and_needs_n_1(policy):
    req = [(score_messages(), [_image(60, 80, 5)])]
    a = sample_completions(policy, req, n=1, max_new_tokens=8, do_sample=False)
    b = sample_completions(policy, req, n=1, max_new_tokens=8, do_sample=False)
    assert a[0].token_ids == b[0].token_ids
    with pytest.raises(ValueError, match="use n=1"):
        sample_completions(policy, req, n=2, max_new_tokens=8, do_sample=False)


def test_placeholder_image_count_mismatch(policy):
    with pytest.raises(ValueError, match="2 image placeholders but 1 images"):
        sample_completions(policy, [(compare_messages(), [_image(60, 60, 0)])], n=1, max_new_tokens=4)


def test_language_model_prefill_runs_once_per_prompt(policy):
    # transformers' num_return_sequences would prefill each prompt n times; ours prefills the batch once.
    seen = []
    lm = policy.model.model.language_model
    handle = lm.register_forward_pre_hook(lambda mod, args, kwargs: seen.append(kwargs["inputs_embeds"].shape),
                                          with_kwargs=True)
    try:
        sample_completions(policy, [(score_messages(), [_image(56, 56, 0)])] * 3, n=5, max_new_tokens=4,
                           batch_size=3, seed=0)
    finally:
        handle.remove()
    prefill = seen[0]
    assert prefill[0] == 3 and prefill[1] > 20  # batch of 3 prompts, the whole prompt at once
    assert all(shape[0] == 15 and shape[1] == 1 for shape in seen[1:])  # then 3 x 5 rows decode one token a step


def test_shared_prefill_matches_plain_generate_greedy(policy):
    import torch

    from evoquality.sampling import build_inputs

    requests = [(score_messages(), [_image(60, 80, 7)]), (compare_messages(), [_image(50, 50, 8), _image(84, 56, 9)])]
    inputs = build_inputs(policy, requests)
    with torch.inference_mode():
        ref = policy.model.generate(**inputs, max_new_tokens=10, do_sample=False)[:, inputs["input_ids"].shape[1]:]
    got = sample_completions(policy, requests, n=1, max_new_tokens=10, do_sample=False, batch_size=2)
    eos = set(policy.model.generation_config.eos_token_id) | {policy.processor.tokenizer.pad_token_id}
    for row, res in zip(ref.tolist(), got):
        expected = row[: next((i for i, t in enumerate(row) if t in eos), len(row))]
        assert res.token_ids[0] == expected


def test_repeated_cache_decodes_like_separate_prompts(policy):
    # n copies of one prefilled cache, decoded greedily, must equal the plain generate of that prompt n times:
    # proves the repeated cache and rope deltas line up with their rows.
    import torch

    from evoquality.sampling import _generate_shared_prefill, build_inputs

    requests = [(score_messages(), [_image(60, 80, 7)]), (compare_messages(), [_image(50, 50, 8), _image(84, 56, 9)])]
    inputs = build_inputs(policy, requests)
    with torch.inference_mode():
        ref = policy.model.generate(**inputs, max_new_tokens=10, do_sample=False)[:, inputs["input_ids"].shape[1]:]
        got = _generate_shared_prefill(policy.model, build_inputs(policy, requests), 3, 10, dict(do_sample=False))
    assert torch.equal(got, ref.repeat_interleave(3, 0))
