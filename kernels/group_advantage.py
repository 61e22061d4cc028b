"""Triton kernel: group-relative advantages with TRL 1.16's semantics (spec: `evoquality.ops.group_advantage`).

One program per group (a row of G rewards), fp32 math. `_group_advantages_1d` is shared with the fused fidelity
kernel so both compute advantages with the same code.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from evoquality.kernels import _launch
from evoquality.ops.group_advantage import _nanstd

SCALE_CODES = {"group": 0, "batch": 1, "none": 2}


@triton.jit
def _group_advantages_1d(r, good, eps, batch_std, SCALE: tl.constexpr):
    """Advantages of one group: r (BLOCK_G,) fp32 rewards, good (BLOCK_G,) their validity; 0 where not good.

    A group with < 2 valid rewards gets 0 everywhere: in TRL its nanstd is NaN (or r - mean = 0) and nan_to_num
    turns the result into 0. batch_std: the batch nanstd (SCALE == 1 only), NaN when the batch has < 2 rewards.
    """
    n = tl.sum(good.to(tl.float32), 0)
    mean = tl.sum(tl.where(good, r, 0.0), 0) / tl.maximum(n, 1.0)
    dev = tl.where(good, r - mean, 0.0)
    if SCALE == 0:
        std = tl.sqrt(tl.sum(dev * dev, 0) / tl.maximum(n - 1.0, 1.0))
        adv = dev / (std + eps)
    elif SCALE == 1:
        adv = dev / (batch_std + eps)
    else:
        adv = dev
    adv = tl.where(tl.where(n >= 2.0, good, False), adv, 0.0)  # scalar condition: see _fidelity_kernel
    return tl.where(adv == adv, adv, 0.0)  # a NaN batch std -> 0, as TRL's nan_to_num


@triton.jit
def _group_advantage_kernel(
    rewards_ptr, adv_ptr, batch_std_ptr, G, stride_r, eps,
    SCALE: tl.constexpr, BLOCK_G: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    g = tl.arange(0, BLOCK_G)
    gmask = g < G
    r = tl.load(rewards_ptr + row * stride_r + g, mask=gmask, other=0.0).to(tl.float32)
    good = gmask & (r == r) & (tl.abs(r) < float("inf"))  # NaN and +-inf are missing rewards
    batch_std = tl.load(batch_std_ptr)
    adv = _group_advantages_1d(r, good, eps, batch_std, SCALE)
    tl.store(adv_ptr + row * G + g, adv, mask=gmask)


def batch_std(rewards: torch.Tensor) -> torch.Tensor:
    """(1,) float32: TRL's nanstd over every reward (non-finite = missing), 0 for a single reward."""
    r = rewards.to(torch.float32).reshape(-1)
    r = torch.where(torch.isfinite(r), r, torch.full_like(r, float("nan")))
    if r.numel() <= 1:
        return torch.zeros(1, dtype=torch.float32, device=r.device)
    return _nanstd(r, dim=0).reshape(1)


@functools.lru_cache(maxsize=512)  # shapes repeat every step: keep launch overhead low
def config(g: int) -> dict:
    block_g = _launch.block(g)
    return {"BLOCK_G": block_g, "num_warps": _launch.warps(block_g)}


def group_advantages_triton(rewards: torch.Tensor, *, scale: str, eps: float) -> torch.Tensor:
    """rewards (B, G) float (validated by the caller) -> advantages (B, G) float32."""
    rewards = rewards.contiguous()
    b, g = rewards.shape
    adv = torch.empty(b, g, dtype=torch.float32, device=rewards.device)
    if b == 0 or g == 0:
        return adv
    std = batch_std(rewards) if scale == "batch" else torch.zeros(1, dtype=torch.float32, device=rewards.device)
    _group_advantage_kernel[(b,)](
        rewards, adv, std, g, rewards.stride(0), float(eps), SCALE=SCALE_CODES[scale], **config(g),
    )
    return adv
