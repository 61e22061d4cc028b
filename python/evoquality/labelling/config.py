"""Configuration of a stage-1 labelling run, and the fingerprint that guards a round directory.

Every field carries its help text; the CLI is generated from these fields. The fingerprint holds exactly what the
stored votes depend on: re-running with a different label policy (hard/soft, margin, no-vote policy) only re-derives
the labels from the same votes, while changing e.g. K or the seed would mix incompatible votes and is refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Optional

from evoquality.labelling.images import DEFAULT_MAX_PIXELS
from evoquality.labelling.votes import ORDER_DESIGNS

MODES = ("compare", "score")
BACKENDS = ("transformers", "vllm")
LABELS = ("hard", "soft")
NO_VOTE_POLICIES = ("tie", "drop")
SCORE_PAIRS = ("sampled", "all")

# Fields that do not change a single stored vote (label policy, progress, where/how the model runs).
_NOT_FINGERPRINTED = {
    "out", "label", "min_margin", "no_votes", "save_answers", "progress", "device", "dtype", "attn_implementation",
    "gpu_memory_utilization", "generation_batch_size",
}


@dataclass
class LabelConfig:
    model: str = field(metadata={"help": "local checkpoint directory of the policy (a Qwen2.5-VL/Qwen2-VL)"})
    images: str = field(metadata={"help": "image folder, or manifest (.jsonl/.json/.txt) of the unlabelled pool"})
    out: str = field(metadata={"help": "round directory (created; an existing one of the same config is resumed)"})
    mode: str = field(default="compare", metadata={"help": f"{MODES}: K comparisons per pair, or K scores per image "
                                                            "turned into pair probabilities by the win-matrix op"})
    pairs: int = field(default=20_000, metadata={"help": "number of cross-image pairs to sample (paper: 20,000)"})
    votes: int = field(default=32, metadata={"help": "K: sampled answers per pair (compare) or per image (score); "
                                                     "paper: 32"})
    seed: int = field(default=0, metadata={"help": "seed of pair sampling, vote orders and generation"})
    order: str = field(default="balanced", metadata={"help": f"{ORDER_DESIGNS}: image-order design of the K votes "
                                                             "(balanced = K/2 per order, random = a coin per vote)"})
    same_content_pairs: int = field(default=0, metadata={
        "help": "extra pairs drawn inside same-content groups (round 2: an image and its synthetic variants)"})
    variants: int = field(default=0, metadata={
        "help": "synthetic distorted variants to generate per pool image (round 2; needs evoquality.data)"})
    score_pairs: str = field(default="sampled", metadata={
        "help": f"{SCORE_PAIRS}: in score mode, label the sampled pairs or all pairs of the pool"})
    batch_items: int = field(default=16, metadata={
        "help": "pairs (compare) or images (score) per generation batch; the unit of crash-safe commits"})
    max_new_tokens: int = field(default=512, metadata={"help": "generation budget per answer"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature (paper: 1)"})
    backend: str = field(default="transformers", metadata={"help": f"{BACKENDS}: generation backend"})
    max_image_pixels: int = field(default=DEFAULT_MAX_PIXELS, metadata={
        "help": "images with more pixels are reported and their pairs dropped"})
    label: str = field(default="hard", metadata={"help": f"{LABELS}: hard label with 0.5 ties (paper) or "
                                                         "vote fraction"})
    min_margin: int = field(default=0, metadata={"help": "flag pairs whose vote margin |K_i - K_j| is below this "
                                                         "(0 = off); flagged pairs are kept and marked"})
    no_votes: str = field(default="tie", metadata={"help": f"{NO_VOTE_POLICIES}: a pair with 0 valid votes becomes "
                                                           "a tie, or is left out of labels.jsonl"})
    save_answers: bool = field(default=False, metadata={"help": "store the raw answer texts next to the votes"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar (votes/s, ETA) on the main process"})
    device: Optional[str] = field(default=None, metadata={"help": "transformers device (default: the process's "
                                                                   "accelerate device)"})
    dtype: str = field(default="auto", metadata={"help": "model dtype: auto | float32 | bfloat16 | float16"})
    attn_implementation: str = field(default="auto", metadata={"help": "auto | sdpa | eager | flash_attention_2"})
    generation_batch_size: int = field(default=8, metadata={
        "help": "prompts per transformers generate call (each with n samples)"})
    gpu_memory_utilization: float = field(default=0.85, metadata={"help": "vLLM memory share"})

    def validate(self) -> None:
        """Raise ValueError naming the first bad option."""
        choices = {"mode": MODES, "backend": BACKENDS, "label": LABELS, "no_votes": NO_VOTE_POLICIES,
                   "order": ORDER_DESIGNS, "score_pairs": SCORE_PAIRS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        positive = ("votes", "batch_items", "max_new_tokens", "max_image_pixels", "generation_batch_size")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("pairs", "same_content_pairs", "variants", "min_margin"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 (votes are sampled), got {self.temperature!r}")
        if self.pairs == 0 and self.same_content_pairs == 0 and not (self.mode == "score" and self.score_pairs == "all"):
            raise ValueError("pairs must be > 0 (or same_content_pairs > 0)")
        if self.variants and not self.same_content_pairs:
            raise ValueError("variants are only used by same-content pairs: set same_content_pairs > 0")

    def fingerprint(self, pool_digest: str, n_images: int) -> dict:
        """What the stored votes depend on (compared key by key when a round directory is reused)."""
        fp = {k: v for k, v in asdict(self).items() if k not in _NOT_FINGERPRINTED}
        fp["model"] = str(Path(self.model).expanduser().resolve())
        fp["images"] = str(Path(self.images).expanduser().resolve())
        fp["pool_digest"] = pool_digest
        fp["pool_size"] = n_images
        return fp


def config_fields() -> list:
    return list(fields(LabelConfig))
