"""Boundary validation shared by the ops: every error is a ValueError naming the argument and what was expected.

Checks that need the values (ranges, NaN) synchronise with the device once; they run where inputs enter (pair
lists, labels), not inside the per-step hot path, which only checks shapes, dtypes and devices.
"""

from __future__ import annotations

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def tensor(name: str, value, *, ndim: int, dtypes: tuple, shape_doc: str) -> torch.Tensor:
    """`value` as a tensor with `ndim` dims and one of `dtypes`; `shape_doc` (e.g. "(B, G)") goes into the message."""
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape {shape_doc}, got {type(value).__name__}")
    if value.dim() != ndim:
        raise ValueError(f"{name} must have shape {shape_doc}, got {tuple(value.shape)}")
    if value.dtype not in dtypes:
        names = ", ".join(str(d).replace("torch.", "") for d in dtypes)
        raise ValueError(f"{name} must have dtype in ({names}), got {str(value.dtype).replace('torch.', '')}")
    return value


def same_shape(name: str, value: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    if tuple(value.shape) != tuple(ref.shape):
        raise ValueError(f"{name} must have the shape of {ref_name} {tuple(ref.shape)}, got {tuple(value.shape)}")


def same_device(name: str, value: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    if value.device != ref.device:
        raise ValueError(f"{name} must be on the device of {ref_name} ({ref.device}), got {value.device}")


def optional_mask(name: str, mask, ref_name: str, ref: torch.Tensor) -> torch.Tensor | None:
    """A bool mask with the shape and device of `ref`, or None."""
    if mask is None:
        return None
    mask = tensor(name, mask, ndim=ref.dim(), dtypes=(torch.bool,), shape_doc=f"{tuple(ref.shape)}")
    same_shape(name, mask, ref_name, ref)
    same_device(name, mask, ref_name, ref)
    return mask


def indices_in_range(name: str, idx: torch.Tensor, n: int) -> None:
    """Every value of the integer tensor `idx` in [0, n)."""
    if idx.numel() and bool(((idx < 0) | (idx >= n)).any()):
        raise ValueError(f"{name} must hold image indices in [0, {n}), got min {int(idx.min())} max {int(idx.max())}")


def probabilities(name: str, p: torch.Tensor) -> None:
    """Every value of `p` in [0, 1] (NaN is rejected too: a label is never missing silently)."""
    if p.numel() and not bool(((p >= 0) & (p <= 1)).all()):
        bad = p[~((p >= 0) & (p <= 1))][:3].tolist()
        raise ValueError(f"{name} must lie in [0, 1], got values such as {bad}")


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """References compute in float64 when given float64 (the test oracle), else in float32 (what kernels do)."""
    return torch.float64 if dtype == torch.float64 else torch.float32
