"""vLLM generation backend: one vLLM request per (pair, order) with ``SamplingParams(n=K_order)``.

vLLM shares the prompt's prefix KV cache among the n samples of one request, and schedules all requests of a batch
together (continuous batching). Request construction (`build_vllm_inputs`, `build_sampling_params`), the engine's
arguments (`engine_kwargs`) and output handling (`collect_texts`) are plain functions, unit-tested with stand-ins;
the engine itself runs in the tests marked `vllm` (wherever vllm imports: a GPU server, or a CPU build of vLLM).

Engine arguments: EvoQuality sets the model, dtype, seed, tensor parallelism and memory from its own options;
any other `vllm.EngineArgs` field passes through `LabelConfig.vllm_engine_args` (CLI: ``--vllm-engine-arg
KEY=VALUE``, repeated). On a CPU build of vLLM two defaults differ from vLLM's, for reasons given at
`engine_kwargs`: chunked prefill is off, and the KV cache is a fixed size instead of a share of memory.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from evoquality.config_fields import parse_key_value
from evoquality.labelling.backends import GenRequest, PreparedImage, check_outputs, decode_images


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


# EvoQuality's options that set these engine arguments (refused in `vllm_engine_args`: one place per setting).
OWN_ENGINE_ARGS = ("model", "dtype", "seed", "tensor_parallel_size", "gpu_memory_utilization")
# vLLM's CPU worker reads gpu_memory_utilization as a share of the host's RAM and refuses to start when that share
# exceeds the free memory, which a GPU-sized share such as 0.85 does on any host running anything else. An explicit
# kv_cache_memory_bytes makes it ignore the share. Its default here is the size vLLM's CPU backend itself used until
# its 0.12 releases when VLLM_CPU_KVCACHE_SPACE was unset, 4 GiB: room for ~75 k tokens of a 7B Qwen2.5-VL in
# bf16, more than a labelling batch holds.
DEFAULT_CPU_KV_CACHE_BYTES = 4 * 1024**3


def parse_engine_arg(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> (key, value), as every repeated KEY=VALUE flag reads it (`config_fields.parse_key_value`):
    VALUE as JSON where it parses (``false``, ``4096``), else a string (``fp8``); dashes in KEY become underscores,
    as in vLLM's CLI."""
    return parse_key_value("vllm_engine_args", text)


def check_engine_args(engine_args: Mapping[str, Any], known: Optional[Iterable[str]] = None) -> None:
    """Refuse keys that are not identifiers, keys EvoQuality sets from its own options, and (given `known`, the
    fields of `vllm.EngineArgs`) keys vLLM does not have, with the closest names."""
    if not isinstance(engine_args, Mapping):
        raise ValueError(f"vllm_engine_args must be a mapping of engine argument names to values, got "
                         f"{type(engine_args).__name__}")
    for key in engine_args:
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"vllm_engine_args: {key!r} is not an engine argument name")
        if key in OWN_ENGINE_ARGS:
            raise ValueError(f"vllm_engine_args: {key!r} is set by EvoQuality's own option of that name; "
                             "use the option")
    if known is not None:
        known = set(known)
        for key in engine_args:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=3)
                hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
                raise ValueError(f"vllm_engine_args: {key!r} is not an argument of this vLLM's EngineArgs{hint}")


def engine_kwargs(
    model_path: str,
    *,
    on_cpu: bool,
    dtype: str = "auto",
    gpu_memory_utilization: float = 0.85,
    tensor_parallel_size: int = 1,
    seed: int = 0,
    engine_args: Optional[Mapping[str, Any]] = None,
    environ: Optional[Mapping[str, str]] = None,
) -> dict:
    """The keyword arguments of `vllm.LLM`: EvoQuality's options, its CPU defaults, then `engine_args`.

    On CPU (`on_cpu`):
    - chunked prefill is off. Every request carries its own seed (its answers do not depend on what else is in the
      batch). When chunked prefill splits a prompt, vLLM samples a token for the unfinished chunk, discards it and
      rewinds that request's generator with `Generator.set_offset`, which only CUDA's Philox generator has: the CPU
      generator raises "CPU Generator does not use offset" at the first split prompt. Whole-prompt prefill never
      rewinds (vLLM then raises max_num_batched_tokens to max_model_len). Asking for chunked prefill on CPU is
      refused for that reason.
    - the KV cache is DEFAULT_CPU_KV_CACHE_BYTES unless `engine_args` give kv_cache_memory_bytes or
      VLLM_CPU_KVCACHE_SPACE is set in `environ` (which vLLM reads itself).
    """
    engine_args = dict(engine_args or {})
    check_engine_args(engine_args)
    environ = os.environ if environ is None else environ
    kwargs: dict[str, Any] = dict(
        model=str(model_path), dtype=dtype, tensor_parallel_size=tensor_parallel_size, seed=seed,
        gpu_memory_utilization=gpu_memory_utilization, limit_mm_per_prompt={"image": 2},
    )
    if on_cpu:
        if engine_args.get("enable_chunked_prefill"):
            raise ValueError("vllm_engine_args: enable_chunked_prefill=True crashes vLLM on CPU with per-request "
                             "seeds ('CPU Generator does not use offset'); leave it off on CPU")
        kwargs["enable_chunked_prefill"] = False
        if "kv_cache_memory_bytes" not in engine_args and not environ.get("VLLM_CPU_KVCACHE_SPACE"):
            kwargs["kv_cache_memory_bytes"] = DEFAULT_CPU_KV_CACHE_BYTES
    kwargs.update(engine_args)
    return kwargs


class VLLMBackend:
    """vLLM offline engine over a local checkpoint (needs the `vllm` extra: a CUDA GPU, or a CPU build of vLLM)."""

    name = "vllm"

    def __init__(
        self,
        model_path: str,
        *,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.85,
        tensor_parallel_size: int = 1,
        seed: int = 0,
        engine_args: Optional[Mapping[str, Any]] = None,
    ):
        try:
            import vllm
            from vllm.platforms import current_platform
        except ImportError:
            raise RuntimeError(
                "backend 'vllm' needs the vllm package (pip install 'evoquality[vllm]', or a CPU build of vLLM)"
            ) from None
        from evoquality.processing import load_processor

        check_engine_args(engine_args or {}, known=(f.name for f in dataclasses.fields(vllm.EngineArgs)))
        self._sampling_params_cls = vllm.SamplingParams
        # Only the chat template is used here: vLLM preprocesses the images itself.
        self._processor = load_processor(model_path)
        self.engine_kwargs = engine_kwargs(
            model_path, on_cpu=current_platform.is_cpu(), dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
            tensor_parallel_size=tensor_parallel_size, seed=seed, engine_args=engine_args,
        )
        self.llm = vllm.LLM(**self.engine_kwargs)

    @classmethod
    def from_config(cls, cfg) -> "VLLMBackend":
        """The backend a `LabelConfig` asks for."""
        return cls(cfg.model, dtype=cfg.dtype, gpu_memory_utilization=cfg.gpu_memory_utilization,
                   tensor_parallel_size=cfg.tensor_parallel_size, seed=cfg.seed, engine_args=cfg.vllm_engine_args)

    def prepare_images(self, paths: Sequence[str], *, max_pixels: int) -> dict[str, PreparedImage]:
        """Each image decoded once: vLLM's `multi_modal_data` takes decoded images (PIL or arrays, not paths or
        bytes) and runs its own image processor on them, so this backend cannot hand the batch to the native
        preprocess."""
        return decode_images(paths, max_pixels=max_pixels)

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
