"""Configuration of a stage-1 labelling run, and the fingerprint that guards a round directory.

Every field carries its help text; the CLI is generated from these fields. The fingerprint holds exactly what the
stored votes depend on: re-running with a different label policy (hard/soft, margin, no-vote policy) only re-derives
the labels from the same votes, while changing e.g. K or the seed would mix incompatible votes and is refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Optional

from evoquality.config_fields import option
from evoquality.io.load import DEFAULT_MAX_PIXELS
from evoquality.labelling.votes import ORDER_DESIGNS

MODES = ("compare", "score")
BACKENDS = ("transformers", "vllm")
LABELS = ("hard", "soft", "mean")
NO_VOTE_POLICIES = ("tie", "drop")
SCORE_PAIRS = ("sampled", "all")

# Fields that do not change a single stored vote (label policy, progress, where/how the model runs).
_NOT_FINGERPRINTED = {
    "out", "label", "min_margin", "no_votes", "save_answers", "progress", "device", "dtype", "attn_implementation",
    "gpu_memory_utilization", "generation_batch_size", "tensor_parallel_size", "vllm_engine_args",
}


@dataclass
class LabelConfig:
    model: str = option(help="local checkpoint directory of the policy (a Qwen2.5-VL/Qwen2-VL)")
    images: str = option(help="image folder, or manifest (.jsonl/.json/.txt) of the unlabelled pool")
    out: str = option(help="round directory (created; an existing one of the same config is resumed)")
    mode: str = option("compare", "K comparisons per pair, or K scores per image turned into pair probabilities "
                                "by the win-matrix op", MODES)
    pairs: int = option(20_000, "number of cross-image pairs to sample (paper: 20,000)")
    votes: int = option(32, "K: sampled answers per pair (compare) or per image (score); paper: 32")
    seed: int = option(0, "seed of pair sampling, vote orders and generation")
    order: str = option("balanced", "image-order design of the K votes (balanced = K/2 per order, random = a coin "
                                  "per vote)", ORDER_DESIGNS)
    same_content_pairs: int = option(0, "extra pairs drawn inside same-content groups (round 2: an image and its "
                                      "synthetic variants)")
    variants: int = option(0, "synthetic distorted variants to generate per pool image (round 2; evoquality.data)")
    variant_pairs: int = option(0, "pairs drawn among an image and its own variants (round 2), besides the others")
    variant_types: str = option("all", "comma-separated distortion types the variants are drawn from (x 5 levels), "
                                     "or 'all' [decision: all types of evoquality.data]")
    score_pairs: str = option("sampled", "in score mode, label the sampled pairs or all pairs of the pool",
                            SCORE_PAIRS)
    batch_items: int = option(16, "pairs (compare) or images (score) per generation batch; the unit of crash-safe "
                                "commits")
    max_new_tokens: int = option(512, "generation budget per answer")
    temperature: float = option(1.0, "sampling temperature (paper: 1)")
    backend: str = option("transformers", "generation backend", BACKENDS)
    max_image_pixels: int = option(DEFAULT_MAX_PIXELS, "images with more pixels are reported and their pairs dropped")
    label: str = option("hard", "hard label with 0.5 ties (paper), vote fraction (soft), or in score mode 'mean': "
                              "compare the images' mean sampled scores (score averaging, the paper's EvoEstimate "
                              "ablation)", LABELS)
    min_margin: int = option(0, "flag pairs whose vote margin |K_i - K_j| is below this (0 = off); flagged pairs "
                              "are kept and marked")
    no_votes: str = option("tie", "a pair with 0 valid votes becomes a tie, or is left out of labels.jsonl",
                         NO_VOTE_POLICIES)
    save_answers: bool = option(False, "store the raw answer texts next to the votes")
    progress: bool = option(True, "show a progress bar (votes/s, ETA) on the main process")
    device: Optional[str] = option(None, "transformers device (default: the process's accelerate device)")
    dtype: str = option("auto", "model dtype", ("auto", "float32", "bfloat16", "float16"))
    attn_implementation: str = option("auto", "attention kernel", ("auto", "sdpa", "eager", "flash_attention_2"))
    generation_batch_size: int = option(8, "prompts per transformers generate call (each with n samples)")
    gpu_memory_utilization: float = option(0.85, "vLLM: GPU memory share (a CPU build of vLLM sizes its KV cache by "
                                               "kv_cache_memory_bytes instead: 4 GiB unless given as an engine "
                                               "argument or by VLLM_CPU_KVCACHE_SPACE)")
    tensor_parallel_size: int = option(1, "vLLM: GPUs one engine spans (the vLLM backend runs in one process)")
    vllm_engine_args: dict = option(
        help="further vllm.EngineArgs for the vLLM backend, e.g. max_model_len, enable_prefix_caching, "
             "kv_cache_memory_bytes (CLI: --vllm-engine-arg KEY=VALUE, repeated; VALUE read as JSON where it parses)",
        flag="--vllm-engine-arg", default_factory=dict)

    def validate(self) -> None:
        """Raise ValueError naming the first bad option."""
        for f in fields(self):
            allowed = f.metadata.get("choices")
            if allowed is not None and getattr(self, f.name) not in allowed:
                raise ValueError(f"{f.name} must be one of {allowed}, got {getattr(self, f.name)!r}")
        positive = ("votes", "batch_items", "max_new_tokens", "max_image_pixels", "generation_batch_size",
                    "tensor_parallel_size")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("pairs", "same_content_pairs", "variants", "variant_pairs", "min_margin"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization!r}")
        if self.vllm_engine_args:
            from evoquality.labelling.vllm_backend import check_engine_args

            if self.backend != "vllm":
                raise ValueError(f"vllm_engine_args are only used by backend 'vllm', not {self.backend!r}")
            check_engine_args(self.vllm_engine_args)
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 (votes are sampled), got {self.temperature!r}")
        all_pairs = self.mode == "score" and self.score_pairs == "all"
        if self.pairs == 0 and self.same_content_pairs == 0 and self.variant_pairs == 0 and not all_pairs:
            raise ValueError("pairs must be > 0 (or same_content_pairs / variant_pairs > 0)")
        if self.label == "mean" and self.mode != "score":
            raise ValueError("label 'mean' compares mean sampled scores: it needs mode 'score'")
        if bool(self.variants) != bool(self.variant_pairs):
            raise ValueError("variants and variant_pairs go together: the variants are only used by variant pairs")
        types = self.variant_type_list()
        if types is not None:
            from evoquality.data.distortions import DISTORTIONS, LEVELS

            unknown = sorted(set(types) - set(DISTORTIONS))
            if unknown or not types:
                raise ValueError(f"variant_types must be 'all' or names from {sorted(DISTORTIONS)}, got "
                                 f"{self.variant_types!r}")
            if self.variants > len(types) * len(LEVELS):
                raise ValueError(f"variants: {self.variants} per image but variant_types {self.variant_types!r} "
                                 f"give only {len(types) * len(LEVELS)} (type, level) combinations")

    def variant_type_list(self) -> Optional[list[str]]:
        """The variant types as a list, or None for all of them."""
        if self.variant_types.strip() == "all":
            return None
        return [t.strip() for t in self.variant_types.split(",") if t.strip()]

    def fingerprint(self, pool_digest: str, n_images: int) -> dict:
        """What the stored votes depend on (compared key by key when a round directory is reused)."""
        fp = {k: v for k, v in asdict(self).items() if k not in _NOT_FINGERPRINTED}
        fp["model"] = str(Path(self.model).expanduser().resolve())
        fp["images"] = str(Path(self.images).expanduser().resolve())
        fp["pool_digest"] = pool_digest
        fp["pool_size"] = n_images
        return fp
