"""Triton kernel: stage-1 vote tally (spec: `evoquality.ops.vote_tally`).

A program owns BLOCK_M pairs and walks their K votes BLOCK_K at a time; counts are integers (exact). The label
(hard/soft, margin flag) is a few elementwise ops on the counts and reuses the reference's `_label`.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from evoquality.kernels import _launch
from evoquality.ops.vote_tally import VoteTally, _label


@triton.jit
def _vote_tally_kernel(
    votes_ptr, swapped_ptr, valid_ptr, wins_i_ptr, wins_j_ptr, invalid_ptr, M, K,
    HAS_SWAPPED: tl.constexpr, HAS_VALID: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr,
):
    m = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    mmask = m < M
    wins_i = tl.zeros([BLOCK_M], dtype=tl.int32)
    wins_j = tl.zeros([BLOCK_M], dtype=tl.int32)
    invalid = tl.zeros([BLOCK_M], dtype=tl.int32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        mask = mmask[:, None] & (k < K)[None, :]
        offs = m[:, None] * K + k[None, :]
        for_i = tl.load(votes_ptr + offs, mask=mask, other=0) == 0  # answer 0 = first shown image better
        if HAS_SWAPPED:
            for_i = for_i ^ (tl.load(swapped_ptr + offs, mask=mask, other=0) != 0)
        ok = mask
        if HAS_VALID:
            ok = ok & (tl.load(valid_ptr + offs, mask=mask, other=0) != 0)
        wins_i += tl.sum((ok & for_i).to(tl.int32), 1)
        wins_j += tl.sum((ok & ~for_i).to(tl.int32), 1)
        invalid += tl.sum((mask & ~ok).to(tl.int32), 1)
    tl.store(wins_i_ptr + m, wins_i.to(tl.int64), mask=mmask)
    tl.store(wins_j_ptr + m, wins_j.to(tl.int64), mask=mmask)
    tl.store(invalid_ptr + m, invalid.to(tl.int64), mask=mmask)


def _as_u8(t: torch.Tensor) -> torch.Tensor:
    """Bool tensors reach the kernel as uint8 (same bytes, no copy when contiguous)."""
    t = t.contiguous()
    return t.view(torch.uint8) if t.dtype == torch.bool else t


@functools.lru_cache(maxsize=512)  # shapes repeat every step: keep launch overhead low
def config(m: int, k: int) -> dict:
    block_k = _launch.block(k, at_most=128)
    block_m = _launch.block(m, at_most=max(1, 1024 // block_k))
    return {"BLOCK_M": block_m, "BLOCK_K": block_k, "num_warps": _launch.warps(block_m * block_k)}


def vote_tally_triton(votes, swapped, valid, *, label: str, min_margin: int) -> VoteTally:
    """votes (M, K), swapped/valid (M, K) bool or None (validated by the caller) -> VoteTally."""
    m, k = votes.shape
    out = [torch.empty(m, dtype=torch.int64, device=votes.device) for _ in range(3)]
    if m:
        v = _as_u8(votes)
        cfg = config(m, k)
        _vote_tally_kernel[(triton.cdiv(m, cfg["BLOCK_M"]),)](
            v, _as_u8(swapped) if swapped is not None else v, _as_u8(valid) if valid is not None else v,
            *out, m, k, HAS_SWAPPED=swapped is not None, HAS_VALID=valid is not None, **cfg,
        )
    wins_i, wins_j, invalid = out
    p, low = _label(wins_i, wins_j, label, min_margin)
    return VoteTally(wins_i, wins_j, invalid, p, low)
