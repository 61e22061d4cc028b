"""vLLM generation backend for GPU servers: one vLLM request per (pair, order) with ``SamplingParams(n=K_order)``.

vLLM shares the prompt's prefix KV cache among the n samples of one request, and schedules all requests of a batch
together (continuous batching). vLLM does not run on CPU-only machines: request construction (`build_vllm_inputs`,
`build_sampling_params`) and output handling (`collect_texts`) are plain functions, unit-tested with stand-ins; the
engine itself is exercised in the GPU suite.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from evoquality.labelling.backends import GenRequest, check_outputs


def build_vllm_inputs(requests: Sequence[GenRequest], render: Callable[[list], str]) -> list[dict]:
    """vLLM prompt dicts: the chat-templated text plus the request's images as ``multi_modal_data``.

    render: messages -> prompt text with the generation prompt appended (the processor's chat template), which
    expands each image placeholder into ``<|vision_start|><|image_pad|><|vision_end|>``; vLLM expands the pad.
    """
    inputs = []
    for idx, req in enumerate(requests):
        text = render(req.messages)
        n_markers = text.count("<|image_pad|>")
        if n_markers != len(req.images):
            raise ValueError(
                f"request {idx}: the rendered prompt has {n_markers} image markers but {len(req.images)} images"
            )
        inputs.append({"prompt": text, "multi_modal_data": {"image": list(req.images)}})
    return inputs


def build_sampling_params(
    requests: Sequence[GenRequest], sampling_params_cls: Any, *, max_new_tokens: int, temperature: float
) -> list[Any]:
    """One ``SamplingParams`` per request: n samples, plain temperature sampling (no top-k/top-p, as the
    transformers path), the request's own seed so the answers do not depend on batch composition."""
    return [
        sampling_params_cls(
            n=req.n, temperature=temperature, top_p=1.0, top_k=-1, max_tokens=max_new_tokens, seed=req.seed
        )
        for req in requests
    ]


def collect_texts(requests: Sequence[GenRequest], outputs: Sequence[Any]) -> list[list[str]]:
    """Map vLLM ``RequestOutput``s back to requests: texts ordered by each completion's ``index``.

    `LLM.generate` returns outputs in prompt order; a count mismatch (a dropped request, fewer samples than n) is an
    error, never a silent shortfall of votes.
    """
    texts = []
    for idx, out in enumerate(outputs):
        completions = sorted(out.outputs, key=lambda c: c.index)
        if [c.index for c in completions] != list(range(len(completions))):
            raise RuntimeError(f"vLLM output {idx} has completion indices {[c.index for c in completions]}")
        texts.append([c.text for c in completions])
    return check_outputs(requests, texts, "vllm")


class VLLMBackend:
    """vLLM offline engine over a local checkpoint (needs the `vllm` extra and a GPU)."""

    name = "vllm"

    def __init__(
        self,
        model_path: str,
        *,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.85,
        max_model_len: Optional[int] = None,
        tensor_parallel_size: int = 1,
        seed: int = 0,
    ):
        try:
            import vllm
        except ImportError:
            raise RuntimeError(
                "backend 'vllm' needs the vllm package (pip install 'evoquality[vllm]') and a CUDA GPU"
            ) from None
        from evoquality.processing import load_processor

        self._sampling_params_cls = vllm.SamplingParams
        # Only the chat template is used here: vLLM preprocesses the images itself.
        self._processor = load_processor(model_path)
        kwargs = dict(
            model=str(model_path),
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            tensor_parallel_size=tensor_parallel_size,
            seed=seed,
            limit_mm_per_prompt={"image": 2},
        )
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        self.llm = vllm.LLM(**kwargs)

    def _render(self, messages: list) -> str:
        return self._processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def generate(
        self, requests: Sequence[GenRequest], *, max_new_tokens: int, temperature: float, batch_seed: int
    ) -> list[list[str]]:
        inputs = build_vllm_inputs(requests, self._render)
        params = build_sampling_params(
            requests, self._sampling_params_cls, max_new_tokens=max_new_tokens, temperature=temperature
        )
        outputs = self.llm.generate(inputs, sampling_params=params, use_tqdm=False)
        return collect_texts(requests, outputs)
