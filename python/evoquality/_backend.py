"""The one place that looks at the hardware and optional accelerators.

Everything else asks this module: is CUDA present, does ``TRITON_INTERPRET`` route kernels through Triton's CPU
interpreter, is triton importable, is the native image extension built (and with which codecs), is flash-attn
installed. It also makes the two dispatch decisions that depend on those facts: which provider runs an op
(compiled/interpreted Triton or the PyTorch reference) and which attention implementation a model loads with.

Nothing here imports torch, triton or flash-attn at module import time: ``import evoquality`` stays cheap and
works on a machine without triton.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import os
from dataclasses import dataclass
from typing import Iterator, Literal, Optional

Provider = Literal["triton", "torch"]
PROVIDERS: tuple[Provider, ...] = ("triton", "torch")

# Set by `force_provider` (tests, benchmarks). None = decide from the device and the environment.
_forced_provider: Optional[Provider] = None


def triton_interpret() -> bool:
    """True when Triton kernels run through the CPU interpreter (must be set before kernels are imported)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@functools.lru_cache(maxsize=None)
def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@functools.lru_cache(maxsize=None)
def triton_available() -> bool:
    """True when triton imports (it is an optional dependency: the `gpu` and `test` extras)."""
    if importlib.util.find_spec("triton") is None:
        return False
    try:
        importlib.import_module("triton")
    except Exception:  # a broken install (e.g. a CUDA-only wheel without driver libraries) is "not available"
        return False
    return True


@functools.lru_cache(maxsize=None)
def flash_attn_available() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


@functools.lru_cache(maxsize=None)
def native_extension():
    """The compiled image extension module, or None when the package was installed without it."""
    try:
        return importlib.import_module("evoquality._native")
    except ImportError:
        return None


def native_codecs() -> dict[str, bool]:
    """Which codecs the native extension was built with (empty when the extension is absent)."""
    ext = native_extension()
    if ext is None:
        return {}
    return {str(k): bool(v) for k, v in ext.codecs().items()}


def _device_type(device) -> str:
    if device is None:
        return "cpu"
    if isinstance(device, str):
        return device.split(":")[0]
    return getattr(device, "type", str(device))


def kernel_provider(device=None) -> Provider:
    """Which implementation runs an op on tensors living on `device`.

    CUDA tensors -> compiled Triton; CPU tensors -> the vectorised PyTorch reference, except under
    ``TRITON_INTERPRET=1`` where the Triton kernel runs through the interpreter (how tests exercise kernels on CPU).
    `force_provider` overrides the decision (tests and benchmarks compare providers side by side).
    """
    if _forced_provider is not None:
        return _forced_provider
    if not triton_available():
        return "torch"
    if _device_type(device) == "cuda":
        return "triton"
    return "triton" if triton_interpret() else "torch"


@contextlib.contextmanager
def force_provider(provider: Optional[Provider]) -> Iterator[None]:
    """Run the body with every op dispatched to `provider` ("triton" | "torch"; None restores auto)."""
    global _forced_provider
    if provider is not None and provider not in PROVIDERS:
        raise ValueError(f"provider must be one of {PROVIDERS} or None, got {provider!r}")
    if provider == "triton" and not triton_available():
        raise RuntimeError("provider 'triton' requested but triton is not importable; install the `gpu` extra")
    previous, _forced_provider = _forced_provider, provider
    try:
        yield
    finally:
        _forced_provider = previous


@dataclass(frozen=True)
class AttnChoice:
    implementation: str
    reason: str


ATTN_CHOICES = ("auto", "flash_attention_2", "sdpa", "eager")


def choose_attn_implementation(requested: str = "auto", device=None) -> AttnChoice:
    """Pick the attention kernel *before* loading: transformers raises at `from_pretrained` when
    flash_attention_2 is requested without the package, so the fallback must be decided here."""
    if requested not in ATTN_CHOICES:
        raise ValueError(f"attn_implementation must be one of {ATTN_CHOICES}, got {requested!r}")
    on_cuda = _device_type(device) == "cuda" if device is not None else cuda_available()
    flash_ok = on_cuda and cuda_available() and flash_attn_available()
    if requested in ("sdpa", "eager"):
        return AttnChoice(requested, "requested explicitly")
    if requested == "flash_attention_2":
        if flash_ok:
            return AttnChoice("flash_attention_2", "requested explicitly; CUDA and flash-attn are present")
        missing = "CUDA device" if not (on_cuda and cuda_available()) else "flash-attn package"
        return AttnChoice("sdpa", f"flash_attention_2 requested but no {missing}; falling back to sdpa")
    if flash_ok:
        return AttnChoice("flash_attention_2", "auto: CUDA and flash-attn are present")
    why = "no CUDA device" if not (on_cuda and cuda_available()) else "flash-attn is not installed"
    return AttnChoice("sdpa", f"auto: {why}, using sdpa")


def summary() -> dict[str, object]:
    """What `evoquality info` reports about the backends."""
    return {
        "cuda": cuda_available(),
        "triton": triton_available(),
        "triton_interpret": triton_interpret(),
        "flash_attn": flash_attn_available(),
        "native_extension": native_extension() is not None,
        "codecs": native_codecs(),
        "kernel_provider_cpu": kernel_provider("cpu"),
        "kernel_provider_cuda": kernel_provider("cuda") if cuda_available() else None,
    }
