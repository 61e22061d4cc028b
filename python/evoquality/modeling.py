"""Load a policy (a Qwen2.5-VL or Qwen2-VL checkpoint and its processor) from a local directory.

Never touches the network: `evoquality` sets the Hugging Face offline flags on import and every `from_pretrained`
here passes `local_files_only=True`. The attention implementation is decided by `_backend` *before* loading,
because asking transformers for flash_attention_2 without the package raises inside `from_pretrained`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from evoquality import _backend

logger = logging.getLogger(__name__)

# model_type in config.json -> transformers class name (resolved lazily: importing transformers costs seconds)
SUPPORTED_ARCHITECTURES = {
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
    "qwen2_vl": "Qwen2VLForConditionalGeneration",
}
_WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")
_DTYPES = ("auto", "float32", "bfloat16", "float16")


class CheckpointError(ValueError):
    """The directory is not a loadable Qwen-VL checkpoint (the message says why)."""


@dataclass
class Policy:
    model: Any
    processor: Any
    attn: _backend.AttnChoice
    path: Path
    model_type: str

    @property
    def device(self):
        return self.model.device


def inspect_checkpoint(path: Union[str, Path]) -> tuple[Path, str]:
    """Validate `path` as a supported checkpoint without loading weights; return (path, model_type).

    Cheap enough to run before any work (labelling and training call it first so a wrong path fails at once).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"model directory {str(path)!r} does not exist")
    if not path.is_dir():
        raise CheckpointError(f"model path {str(path)!r} is a file; expected a checkpoint directory")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{str(path)!r} is not a model checkpoint: it has no config.json")
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{str(config_file)!r} is not valid JSON: {err}") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type not in SUPPORTED_ARCHITECTURES:
        raise CheckpointError(
            f"{str(path)!r} holds an unsupported architecture (model_type={model_type!r}); "
            f"EvoQuality supports {sorted(SUPPORTED_ARCHITECTURES)}"
        )
    if not any(next(path.glob(pattern), None) for pattern in _WEIGHT_PATTERNS):
        raise CheckpointError(f"{str(path)!r} has a config.json but no weights (*.safetensors or *.bin)")
    return path, model_type


def resolve_dtype(dtype: Union[str, Any], device) -> Any:
    """'auto' -> bfloat16 on a CUDA device that supports it, else float32 (CPU matmuls in bf16 are slow)."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES} or a torch.dtype, got {dtype!r}")
    if dtype == "auto":
        on_cuda = torch.device(device).type == "cuda"
        return torch.bfloat16 if on_cuda and torch.cuda.is_bf16_supported() else torch.float32
    return getattr(torch, dtype)


def default_device() -> str:
    return "cuda" if _backend.cuda_available() else "cpu"


def load_policy(
    path: Union[str, Path],
    *,
    dtype: Union[str, Any] = "auto",
    device: Optional[str] = None,
    attn_implementation: str = "auto",
    image_processor=None,
) -> Policy:
    """Load model + processor from a local checkpoint directory.

    Args:
        path: directory written by `save_pretrained` (a real Qwen2.5-VL/Qwen2-VL checkpoint or a tiny one).
        dtype: "auto" | "float32" | "bfloat16" | "float16" | torch.dtype.
        device: "cpu", "cuda", "cuda:1", ...; None = CUDA when present, else CPU.
        attn_implementation: "auto" (flash_attention_2 only with CUDA and flash-attn, else sdpa) | "sdpa" |
            "eager" | "flash_attention_2" (falls back to sdpa, with a warning, where it cannot run).
        image_processor: replaces the checkpoint's image processor (e.g. EvoQuality's native one).
    """
    import transformers

    from evoquality.processing import load_processor

    path, model_type = inspect_checkpoint(path)
    device = device or default_device()
    attn = _backend.choose_attn_implementation(attn_implementation, device)
    log = logger.warning if attn_implementation == "flash_attention_2" != attn.implementation else logger.info
    log("attention implementation: %s (%s)", attn.implementation, attn.reason)
    torch_dtype = resolve_dtype(dtype, device)
    model_cls = getattr(transformers, SUPPORTED_ARCHITECTURES[model_type])
    model = model_cls.from_pretrained(
        path, dtype=torch_dtype, attn_implementation=attn.implementation, local_files_only=True
    ).to(device)
    model.eval()
    processor = load_processor(path, image_processor=image_processor)
    return Policy(model=model, processor=processor, attn=attn, path=path, model_type=model_type)
