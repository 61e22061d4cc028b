"""Triton kernels: win probabilities from per-image score samples (spec: `evoquality.ops.win_matrix`).

All pairs: a program owns a BLOCK_N x BLOCK_N tile of the (N, N) output. It keeps the j-images' samples in
registers (BLOCK_N x BLOCK_K), streams the i-images' samples one column at a time and accumulates the comparisons
in a (BLOCK_N, BLOCK_N, BLOCK_K) register tile; the (N, N, K, K) comparison tensor never exists. Only tiles on or
above the diagonal are computed; each writes P[i, j] and its mirror P[j, i] = 1 - P[i, j].
Invalid samples are excluded without branches: an i-sample enters as -inf and a j-sample as +inf, so every
comparison involving one is a loss with no tie (valid samples are finite).
Pair list: one program per BLOCK_M pairs, the same accumulation on (BLOCK_M, BLOCK_K) tiles.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from evoquality.kernels import _launch


@triton.jit
def _win_count(a, b):
    """[a > b] + [a >= b] = 2 x (win + tie / 2), as fp32 (exact: integers)."""
    return tl.where(a > b, 1.0, 0.0) + tl.where(a >= b, 1.0, 0.0)


@triton.jit
def _win_matrix_kernel(
    lo_ptr, hi_ptr, n_ptr, out_ptr, N, K,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_i = tl.program_id(0)
    pid_j = tl.program_id(1)
    if pid_j >= pid_i:  # tiles on or above the diagonal
        ii = pid_i.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
        jj = pid_j.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
        imask = ii < N
        jmask = jj < N
        acc = tl.zeros([BLOCK_N, BLOCK_N, BLOCK_K], dtype=tl.float32)
        for b0 in range(0, K, BLOCK_K):
            kk = b0 + tl.arange(0, BLOCK_K)
            sj = tl.load(hi_ptr + jj[:, None] * K + kk[None, :], mask=jmask[:, None] & (kk < K)[None, :],
                         other=float("inf"))
            for a in range(0, K):
                si = tl.load(lo_ptr + ii * K + a, mask=imask, other=-float("inf"))
                acc += _win_count(si[:, None, None], sj[None, :, :])
        wins = tl.sum(acc, 2) * 0.5
        n_i = tl.load(n_ptr + ii, mask=imask, other=0.0)
        n_j = tl.load(n_ptr + jj, mask=jmask, other=0.0)
        both = (n_i[:, None] > 0.0) & (n_j[None, :] > 0.0)
        p = tl.where(both, wins / tl.maximum(n_i[:, None] * n_j[None, :], 1.0), float("nan"))
        omask = imask[:, None] & jmask[None, :]
        tl.store(out_ptr + ii[:, None] * N + jj[None, :], p, mask=omask)
        # mirror into the tile below the diagonal, which no program computes; a diagonal tile computes all of itself
        # (no two stores to one address). tl.where: the interpreter cannot `&` a scalar bool with a tile.
        mirror = tl.where(pid_j > pid_i, omask, False)
        tl.store(out_ptr + jj[None, :] * N + ii[:, None], 1.0 - p, mask=mirror)


@triton.jit
def _win_pairs_kernel(
    lo_ptr, hi_ptr, n_ptr, pairs_ptr, out_ptr, M, K,
    BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr,
):
    m = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    mmask = m < M
    pi = tl.load(pairs_ptr + 2 * m, mask=mmask, other=0)
    pj = tl.load(pairs_ptr + 2 * m + 1, mask=mmask, other=0)
    acc = tl.zeros([BLOCK_M, BLOCK_K], dtype=tl.float32)
    for b0 in range(0, K, BLOCK_K):
        kk = b0 + tl.arange(0, BLOCK_K)
        sj = tl.load(hi_ptr + pj[:, None] * K + kk[None, :], mask=mmask[:, None] & (kk < K)[None, :],
                     other=float("inf"))
        for a in range(0, K):
            si = tl.load(lo_ptr + pi * K + a, mask=mmask, other=-float("inf"))
            acc += _win_count(si[:, None], sj)
    wins = tl.sum(acc, 1) * 0.5
    n_i = tl.load(n_ptr + pi, mask=mmask, other=0.0)
    n_j = tl.load(n_ptr + pj, mask=mmask, other=0.0)
    p = tl.where((n_i > 0.0) & (n_j > 0.0), wins / tl.maximum(n_i * n_j, 1.0), float("nan"))
    tl.store(out_ptr + m, p, mask=mmask)


@functools.lru_cache(maxsize=512)  # shapes repeat every step: keep launch overhead low
def config_all_pairs(k: int) -> dict:
    """16 x 16 image tiles x up to 32 samples: ~80 registers at 8 warps on sm_90, no spills."""
    block_k = _launch.block(k, at_most=32)
    return {"BLOCK_N": 16, "BLOCK_K": block_k, "num_warps": _launch.warps(16 * 16 * block_k)}


@functools.lru_cache(maxsize=512)
def config_pairs(m: int, k: int) -> dict:
    block_k = _launch.block(k, at_most=64)
    block_m = _launch.block(m, at_most=max(1, 1024 // block_k))
    return {"BLOCK_M": block_m, "BLOCK_K": block_k, "num_warps": _launch.warps(block_m * block_k)}


def win_matrix_triton(scores: torch.Tensor, ok: torch.Tensor, pairs) -> torch.Tensor:
    """scores (N, K), ok (N, K) bool valid samples, pairs (M, 2) int64 or None -> (N, N) or (M,) float32."""
    n_img, k = scores.shape
    s = scores.to(torch.float32)
    lo = torch.where(ok, s, torch.full_like(s, -float("inf"))).contiguous()
    hi = torch.where(ok, s, torch.full_like(s, float("inf"))).contiguous()
    n = ok.sum(1).to(torch.float32)
    if pairs is None:
        out = torch.empty(n_img, n_img, dtype=torch.float32, device=scores.device)
        if n_img and k:
            cfg = config_all_pairs(k)
            tiles = triton.cdiv(n_img, cfg["BLOCK_N"])
            _win_matrix_kernel[(tiles, tiles)](lo, hi, n, out, n_img, k, **cfg)
        elif n_img:
            out.fill_(float("nan"))
        return out
    m = pairs.shape[0]
    out = torch.empty(m, dtype=torch.float32, device=scores.device)
    if m and k:
        cfg = config_pairs(m, k)
        _win_pairs_kernel[(triton.cdiv(m, cfg["BLOCK_M"]),)](lo, hi, n, pairs.contiguous(), out, m, k, **cfg)
    elif m:
        out.fill_(float("nan"))
    return out
