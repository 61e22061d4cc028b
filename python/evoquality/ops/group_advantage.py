"""Group-relative advantages (docs/method.md, paper Eq. 4) with TRL 1.16's exact semantics.

TRL (`GRPOTrainer._generate_and_score_completions`, sum_then_normalize, one reward function):
    mean_g = nanmean(r_g)                                  per group, always
    std    = nanstd(r_g) per group ("group", "none")  |  nanstd(all rewards) ("batch")
             where nanstd is Bessel-corrected over non-NaN values and NaN below 2 of them;
             std = 0 when G = 1 ("group"/"none") or when the batch holds one reward ("batch")
    a      = r - mean_g, divided by (std + eps) unless scale == "none"
    a      = nan_to_num(a, nan=0)       -> a NaN reward, a group with < 2 valid rewards: advantage 0
One deliberate difference: a reward of +-inf counts as missing (NaN) here; in TRL it poisons its whole group.
"""

from __future__ import annotations

import torch

from evoquality import _backend
from evoquality.ops import _checks
from evoquality.ops.constants import EPS_ADV, SCALES


def _check(rewards, scale, eps) -> torch.Tensor:
    rewards = _checks.tensor("rewards", rewards, ndim=2, dtypes=_checks.FLOAT_DTYPES, shape_doc="(B, G)")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if not (isinstance(eps, (int, float)) and eps > 0):
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    return rewards


def _nanstd(x: torch.Tensor, dim) -> torch.Tensor:
    """Bessel-corrected std over non-NaN values; NaN where fewer than 2 (as trl.trainer.utils.nanstd)."""
    count = (~torch.isnan(x)).sum(dim=dim, keepdim=True)
    mean = torch.nansum(x, dim=dim, keepdim=True) / count
    sq = torch.nansum((x - mean) ** 2, dim=dim, keepdim=True)
    var = torch.where(count > 1, sq / (count - 1).clamp(min=1), torch.full_like(sq, float("nan")))
    return var.sqrt()


@torch.no_grad()
def group_advantages_ref(rewards: torch.Tensor, *, scale: str = "group", eps: float = EPS_ADV) -> torch.Tensor:
    """Advantages (B, G) for rewards (B, G) (one group of G rollouts per row; NaN/inf = missing reward).

    Computes in float64 for float64 input, else float32; returns that dtype. Missing rewards get advantage 0.
    """
    rewards = _check(rewards, scale, eps)
    r = rewards.to(_checks.compute_dtype(rewards.dtype))
    r = torch.where(torch.isfinite(r), r, torch.full_like(r, float("nan")))
    b, g = r.shape
    count = (~torch.isnan(r)).sum(dim=1, keepdim=True)
    mean = torch.nansum(r, dim=1, keepdim=True) / count
    if scale == "batch":
        std = _nanstd(r.reshape(-1), dim=0) if r.numel() > 1 else torch.zeros(1, dtype=r.dtype, device=r.device)
    else:
        std = _nanstd(r, dim=1) if g > 1 else torch.zeros(b, 1, dtype=r.dtype, device=r.device)
    adv = r - mean
    if scale != "none":
        adv = adv / (std + eps)
    return torch.nan_to_num(adv, nan=0.0)


@torch.no_grad()
def group_advantages(rewards: torch.Tensor, *, scale: str = "group", eps: float = EPS_ADV) -> torch.Tensor:
    """Advantages (B, G) float32 (float64 on the torch path for float64 input), dispatched by `_backend`."""
    rewards = _check(rewards, scale, eps)
    if _backend.kernel_provider(rewards.device) == "triton":
        from evoquality.kernels.group_advantage import group_advantages_triton

        return group_advantages_triton(rewards, scale=scale, eps=eps)
    return group_advantages_ref(rewards, scale=scale, eps=eps)
