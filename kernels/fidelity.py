"""Triton kernel: fidelity reward (docs/method.md, paper Eq. 2-3), optionally fused with the group advantages (Eq. 4).

Spec: `evoquality.ops.fidelity`. One program per image i: it loads its G scores, derives its own variance, then walks
its CSR partner list BLOCK_P partners at a time, recomputing each partner's mean/variance from the partner's row
(G values; cheaper than a separate statistics launch), and accumulates the fidelity of all G rollouts. With the
advantages fused, the same program z-scores its group: the whole training-step reward is one launch.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from evoquality.kernels import _launch
from evoquality.kernels.group_advantage import SCALE_CODES, _group_advantages_1d, group_advantages_triton
from evoquality.ops.constants import EPS_ADV
from evoquality.ops.fidelity import MIN_VALID, FidelityAdvantages
from evoquality.ops.partners import Partners

_NO_ADVANTAGES = -1  # ADV_MODE: rewards only


@triton.jit
def _fidelity_kernel(
    scores_ptr, valid_ptr, indptr_ptr, indices_ptr, pstar_ptr, rewards_ptr, adv_ptr,
    G, stride_s, gamma, eps,
    HAS_VALID: tl.constexpr, ADV_MODE: tl.constexpr, MIN_N: tl.constexpr,
    BLOCK_G: tl.constexpr, BLOCK_P: tl.constexpr,
):
    i = tl.program_id(0).to(tl.int64)
    g = tl.arange(0, BLOCK_G)
    gmask = g < G
    q = tl.load(scores_ptr + i * stride_s + g, mask=gmask, other=0.0).to(tl.float32)
    ok = gmask & (q == q) & (tl.abs(q) < float("inf"))  # NaN/inf scores are invalid samples
    if HAS_VALID:
        ok = ok & (tl.load(valid_ptr + i * G + g, mask=gmask, other=0) != 0)
    n_i = tl.sum(ok.to(tl.float32), 0)
    mu_i = tl.sum(tl.where(ok, q, 0.0), 0) / tl.maximum(n_i, 1.0)
    d_i = tl.where(ok, q - mu_i, 0.0)
    var_i = tl.sum(d_i * d_i, 0) / tl.maximum(n_i - 1.0, 1.0)  # unbiased

    start = tl.load(indptr_ptr + i)
    end = tl.load(indptr_ptr + i + 1)
    acc = tl.zeros([BLOCK_G], dtype=tl.float32)
    used = tl.sum(tl.zeros([BLOCK_P], dtype=tl.float32), 0)
    for p0 in range(start, end, BLOCK_P):
        p = p0 + tl.arange(0, BLOCK_P)
        pmask = p < end
        j = tl.load(indices_ptr + p, mask=pmask, other=0)
        ps = tl.load(pstar_ptr + p, mask=pmask, other=0.0)
        tmask = pmask[:, None] & gmask[None, :]
        sj = tl.load(scores_ptr + j[:, None] * stride_s + g[None, :], mask=tmask, other=0.0).to(tl.float32)
        okj = tmask & (sj == sj) & (tl.abs(sj) < float("inf"))
        if HAS_VALID:
            okj = okj & (tl.load(valid_ptr + j[:, None] * G + g[None, :], mask=tmask, other=0) != 0)
        n_j = tl.sum(okj.to(tl.float32), 1)
        mu_j = tl.sum(tl.where(okj, sj, 0.0), 1) / tl.maximum(n_j, 1.0)
        d_j = tl.where(okj, sj - mu_j[:, None], 0.0)
        var_j = tl.sum(d_j * d_j, 1) / tl.maximum(n_j - 1.0, 1.0)
        usable = pmask & (n_j >= MIN_N)  # a partner needs a mean and a variance
        z = (q[None, :] - mu_j[:, None]) / tl.sqrt(var_i + var_j[:, None] + gamma)  # Eq. 2
        pk = 0.5 * (1.0 + tl.math.erf(z * 0.7071067811865476))
        # clamp: fp32 erf may overshoot [0, 1] by an ulp and sqrt of a negative is NaN
        pk = tl.minimum(tl.maximum(pk, 0.0), 1.0)
        f = tl.sqrt(ps[:, None] * pk) + tl.sqrt((1.0 - ps[:, None]) * (1.0 - pk))  # Eq. 3 summand
        acc += tl.sum(tl.where(usable[:, None], f, 0.0), 0)
        used += tl.sum(usable.to(tl.float32), 0)

    # tl.where with a scalar condition: the interpreter cannot `&` a 0-d bool with a vector
    good = tl.where(n_i >= MIN_N, tl.where(used > 0.0, ok, False), False)
    reward = tl.where(good, acc / tl.maximum(used, 1.0), float("nan"))
    tl.store(rewards_ptr + i * G + g, reward, mask=gmask)
    if ADV_MODE >= 0:
        adv = _group_advantages_1d(reward, good, eps, 0.0, ADV_MODE)
        tl.store(adv_ptr + i * G + g, adv, mask=gmask)


@functools.lru_cache(maxsize=512)  # shapes repeat every step: keep launch overhead low
def config(b: int, g: int, nnz: int) -> dict:
    """Block sizes and warps for B images x G rollouts with nnz partner entries (host-side sizes: no sync)."""
    block_g = _launch.block(g)
    avg_partners = -(-nnz // max(b, 1))
    block_p = _launch.block(avg_partners, at_most=max(1, min(64, 1024 // block_g)))
    return {"BLOCK_G": block_g, "BLOCK_P": block_p, "num_warps": _launch.warps(block_g * block_p)}


def fidelity_triton(
    scores: torch.Tensor, partners: Partners, valid, *, gamma: float, scale=None, eps: float = EPS_ADV
) -> FidelityAdvantages:
    """Rewards (and, unless scale is None, advantages) (B, G) float32; inputs validated by `evoquality.ops.fidelity`.

    scale "group"/"none": one launch. scale "batch": the batch std needs every reward first, so the rewards launch
    is followed by the group-advantage kernel (two launches plus a reduction).
    """
    scores = scores.contiguous()
    b, g = scores.shape
    fused = scale in ("group", "none")
    out = torch.empty(2 if fused else 1, b, g, dtype=torch.float32, device=scores.device)  # one allocation
    rewards, adv = out[0], out[-1]  # adv_ptr is unused when not fused
    if b:
        valid_u8 = valid.contiguous().view(torch.uint8) if valid is not None else scores  # dummy pointer when absent
        _fidelity_kernel[(b,)](
            scores, valid_u8, partners.indptr, partners.indices, partners.p_star, rewards, adv,
            g, scores.stride(0), float(gamma), float(eps),
            HAS_VALID=valid is not None, ADV_MODE=SCALE_CODES[scale] if fused else _NO_ADVANTAGES, MIN_N=MIN_VALID,
            **config(b, g, partners.indices.numel()),
        )
    if scale is None:
        return FidelityAdvantages(rewards, None)
    if not fused:
        adv = group_advantages_triton(rewards, scale=scale, eps=eps)
    return FidelityAdvantages(rewards, adv)
