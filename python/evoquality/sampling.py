"""Sample N completions for each of a batch of multimodal prompts, with one prefill per prompt.

Voting asks the same question K times. transformers' `num_return_sequences` shares the vision encoder but repeats
the prompt's language-model prefill n times (it expands the inputs before the first forward). Here the prompt minus
its last token is prefilled once, the KV cache and Qwen-VL's rope deltas are repeat-interleaved n times, and
`generate` continues from that cache: one prefill per prompt, n decodes. This module is the transformers `generate`
path; vLLM (GPU servers) lives with the labelling backends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from evoquality.modeling import Policy

# A request is (chat messages with image placeholders, the images in placeholder order): decoded images, or paths
# that `image_cache(policy).prepare` has read, checked and preprocessed.
Request = tuple[list[dict], Sequence]


@dataclass
class Completions:
    """The n sampled answers to one request."""

    texts: list[str]
    token_ids: list[list[int]]


def image_cache(policy: Policy):
    """The policy processor's image processor, wrapped once in the cache keyed by path (`io.preprocess_cache`): a
    batch's image paths go through its `prepare` (headers checked, one native batch call), and requests carrying
    those paths are then served from it, with no decoded image in between."""
    from evoquality.io.preprocess_cache import CachedImageProcessor

    processor = policy.processor
    if not isinstance(processor.image_processor, CachedImageProcessor):
        processor.image_processor = CachedImageProcessor(processor.image_processor)
    return processor.image_processor


def _batches(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def build_inputs(policy: Policy, requests: Sequence[Request]):
    """Tokenise a batch of requests (left-padded, as decoder-only generation requires) with their pixel values."""
    processor = policy.processor
    texts, images = [], []
    for messages, request_images in requests:
        n_placeholders = sum(
            1 for m in messages for c in (m["content"] if isinstance(m["content"], list) else []) if c["type"] == "image"
        )
        if n_placeholders != len(request_images):
            raise ValueError(
                f"request has {n_placeholders} image placeholders but {len(request_images)} images were given"
            )
        texts.append(processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
        images.extend(request_images)
    return processor(
        text=texts, images=images or None, padding=True, padding_side="left", return_tensors="pt"
    ).to(policy.device)


def _strip(ids: list[int], stop_ids: set[int]) -> list[int]:
    for pos, tok in enumerate(ids):
        if tok in stop_ids:
            return ids[:pos]
    return ids


def _generate_shared_prefill(model, inputs, n: int, max_new_tokens: int, sampling: dict):
    """New token ids (B*n, T) for a tokenised batch; rows [i*n, (i+1)*n) answer prompt i.

    The cache covers all but the last prompt token, which `generate` feeds itself (it needs the logits of that
    position to sample the first new token).
    """
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    per_token = [key for key in ("mm_token_type_ids",) if key in inputs]
    prefill = dict(inputs, input_ids=ids[:, :-1], attention_mask=mask[:, :-1])
    prefill.update({key: inputs[key][:, :-1] for key in per_token})
    cache = model(**prefill, use_cache=True, logits_to_keep=1).cache
    if n > 1:
        cache.batch_repeat_interleave(n)
        # Qwen-VL keeps the multimodal rope offsets of the prefilled batch on the model; decoding reads them.
        model.model.rope_deltas = model.model.rope_deltas.repeat_interleave(n, 0)
    rest = {key: inputs[key].repeat_interleave(n, 0) for key in ("input_ids", "attention_mask", *per_token)}
    out = model.generate(**rest, cache=cache, max_new_tokens=max_new_tokens, **sampling)
    return out[:, ids.shape[1] :]


def sample_completions(
    policy: Policy,
    requests: Sequence[Request],
    *,
    n: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    do_sample: bool = True,
    batch_size: int = 8,
    seed: Optional[int] = None,
) -> list[Completions]:
    """Generate `n` completions for every request; result i belongs to requests[i].

    Sampling uses plain temperature sampling (top-k/top-p off) unless `do_sample=False` (greedy, then n must be 1).
    `seed` seeds torch's RNG once before the first batch, so a call is reproducible on the same device.
    """
    import torch

    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not do_sample and n != 1:
        raise ValueError("greedy decoding (do_sample=False) gives identical completions: use n=1")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if seed is not None:
        torch.manual_seed(seed)
    gen_cfg = policy.model.generation_config
    eos = gen_cfg.eos_token_id
    stop_ids = set(eos if isinstance(eos, list) else [eos]) | {policy.processor.tokenizer.pad_token_id}
    sampling = dict(do_sample=True, temperature=temperature, top_k=0, top_p=1.0) if do_sample else dict(do_sample=False)
    results: list[Completions] = []
    for batch in _batches(list(requests), batch_size):
        inputs = build_inputs(policy, batch)
        with torch.inference_mode():
            new_tokens = _generate_shared_prefill(policy.model, inputs, n, max_new_tokens, sampling).tolist()
        for i in range(len(batch)):
            ids = [_strip(row, stop_ids) for row in new_tokens[i * n : (i + 1) * n]]
            texts = policy.processor.tokenizer.batch_decode(ids, skip_special_tokens=True)
            results.append(Completions(texts=texts, token_ids=ids))
    return results
