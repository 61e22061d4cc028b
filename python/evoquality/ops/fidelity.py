"""Fidelity reward (docs/method.md, paper Eq. 2-3) and the fused fidelity + group advantages of the training step.

For image i with G sampled scores q_1..q_G (NaN/inf or `valid` False = a failed parse, an invalid sample):
    mu_i, var_i  = mean and unbiased variance over the valid samples of i
    p_k(i, j)    = Phi((q_k(i) - mu_j) / sqrt(var_i + var_j + gamma))                                  [Eq. 2]
    r_k(i)       = mean over usable partners j of sqrt(p*_ij p_k) + sqrt((1 - p*_ij)(1 - p_k))        [Eq. 3]

Defined behaviour at the edges (our decisions, the paper is silent):
- statistics need >= 2 valid samples (MIN_VALID): an image with fewer gets NaN rewards for every rollout (its group
  advantage would be 0 anyway: TRL zeroes groups with < 2 valid rewards), and as a partner it is skipped;
- an image with no usable partner gets NaN rewards (no signal, never an invented one); an invalid sample gets NaN;
- zero variance on both sides: gamma > 0 keeps the denominator sqrt(gamma), so p_k is a step of width ~sqrt(gamma)
  around mu_j (exactly 0.5 when q_k == mu_j). gamma must be > 0.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Union

import torch

from evoquality import _backend
from evoquality.ops import _checks
from evoquality.ops.constants import GAMMA
from evoquality.ops.group_advantage import EPS_ADV, SCALES, group_advantages_ref
from evoquality.ops.partners import Partners

MIN_VALID = 2  # valid samples an image needs for a mean and an unbiased variance


class FidelityAdvantages(NamedTuple):
    rewards: torch.Tensor  # (B, G) float32, NaN for invalid samples / unusable images
    advantages: torch.Tensor  # (B, G) float32, 0 where the reward is NaN


def _check(scores, partners, p_star, valid, gamma) -> tuple[torch.Tensor, Partners, Optional[torch.Tensor]]:
    """Validate and normalise the inputs; a dense (B, B) mask + p_star becomes CSR `Partners`."""
    scores = _checks.tensor("scores", scores, ndim=2, dtypes=_checks.FLOAT_DTYPES, shape_doc="(B, G)")
    if scores.shape[1] < 1:
        raise ValueError(f"scores must have shape (B, G) with G >= 1, got {tuple(scores.shape)}")
    valid = _checks.optional_mask("valid", valid, "scores", scores)
    if not (isinstance(gamma, (int, float)) and gamma > 0 and math.isfinite(gamma)):
        raise ValueError(f"gamma must be a positive finite number, got {gamma!r}")
    if isinstance(partners, Partners):
        if p_star is not None:
            raise ValueError("p_star must be None when partners is a Partners (it carries its own labels)")
    elif isinstance(partners, torch.Tensor):
        if p_star is None:
            raise ValueError("p_star (B, B) is required when partners is a dense (B, B) mask")
        partners = Partners.from_dense(partners, p_star)
    else:
        raise ValueError(f"partners must be a Partners or a (B, B) bool mask tensor, got {type(partners).__name__}")
    if partners.num_images != scores.shape[0]:
        raise ValueError(
            f"partners must describe B={scores.shape[0]} images (the rows of scores), got {partners.num_images}"
        )
    if partners.device != scores.device:
        raise ValueError(f"partners must be on the device of scores ({scores.device}), got {partners.device}")
    return scores, partners, valid


def score_stats_ref(scores: torch.Tensor, valid: Optional[torch.Tensor] = None):
    """Per image (B,): valid mask (B, G), count n, mean mu, unbiased variance var (NaN where n < MIN_VALID)."""
    s = scores.to(_checks.compute_dtype(scores.dtype))
    ok = torch.isfinite(s) if valid is None else torch.isfinite(s) & valid
    n = ok.sum(1)
    s0 = torch.where(ok, s, torch.zeros_like(s))
    mu = s0.sum(1) / n
    var = torch.where(ok, (s - mu[:, None]) ** 2, torch.zeros_like(s)).sum(1) / (n - 1)
    usable = n >= MIN_VALID
    nan = torch.full_like(mu, float("nan"))
    return ok, n, torch.where(usable, mu, nan), torch.where(usable, var, nan)


def _fidelity_ref(scores, partners: Partners, valid, gamma) -> torch.Tensor:
    ok, n, mu, var = score_stats_ref(scores, valid)
    s = scores.to(mu.dtype)
    rows, cols = partners.rows(), partners.indices
    p_star = partners.p_star.to(mu.dtype)[:, None]
    usable = (n[rows] >= MIN_VALID) & (n[cols] >= MIN_VALID)  # (nnz,): statistics on both sides
    z = (s[rows] - mu[cols, None]) / torch.sqrt(var[rows, None] + var[cols, None] + gamma)  # (nnz, G)
    p = 0.5 * (1.0 + torch.erf(z * (1.0 / math.sqrt(2.0))))  # Phi, Eq. 2
    f = torch.sqrt(p_star * p) + torch.sqrt((1.0 - p_star) * (1.0 - p))  # Eq. 3 summand
    f = torch.where(usable[:, None], f, 0.0)  # unusable partners (NaN statistics) contribute nothing
    total = torch.zeros_like(s).index_add_(0, rows, f)
    count = torch.zeros(s.shape[0], dtype=s.dtype, device=s.device).index_add_(0, rows, usable.to(s.dtype))
    reward = total / count[:, None]  # 0/0 = NaN for images without usable partners
    return torch.where(ok & (count[:, None] > 0), reward, torch.full_like(reward, float("nan")))


@torch.no_grad()
def fidelity_reward_ref(
    scores: torch.Tensor,
    partners: Union[Partners, torch.Tensor],
    p_star: Optional[torch.Tensor] = None,
    *,
    valid: Optional[torch.Tensor] = None,
    gamma: float = GAMMA,
) -> torch.Tensor:
    """Rewards (B, G) for scores (B, G): the vectorised PyTorch spec (float64 math for float64 scores, else float32).

    partners: `Partners` (CSR with its labels), or a dense (B, B) bool mask with `p_star` (B, B).
    valid: optional (B, G) bool; non-finite scores are invalid regardless.
    """
    scores, partners, valid = _check(scores, partners, p_star, valid, gamma)
    return _fidelity_ref(scores, partners, valid, gamma)


@torch.no_grad()
def fidelity_advantages_ref(
    scores: torch.Tensor,
    partners: Union[Partners, torch.Tensor],
    p_star: Optional[torch.Tensor] = None,
    *,
    valid: Optional[torch.Tensor] = None,
    gamma: float = GAMMA,
    scale: str = "group",
    eps: float = EPS_ADV,
) -> FidelityAdvantages:
    """Fidelity rewards and their group advantages (TRL semantics, see `group_advantage`): the fused op's spec."""
    scores, partners, valid = _check(scores, partners, p_star, valid, gamma)
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    rewards = _fidelity_ref(scores, partners, valid, gamma)
    return FidelityAdvantages(rewards, group_advantages_ref(rewards, scale=scale, eps=eps))


@torch.no_grad()
def fidelity_reward(
    scores: torch.Tensor,
    partners: Union[Partners, torch.Tensor],
    p_star: Optional[torch.Tensor] = None,
    *,
    valid: Optional[torch.Tensor] = None,
    gamma: float = GAMMA,
) -> torch.Tensor:
    """Rewards (B, G) float32 (Eq. 2-3), dispatched by `_backend` (Triton on CUDA, the reference on CPU)."""
    scores, partners, valid = _check(scores, partners, p_star, valid, gamma)
    if _backend.kernel_provider(scores.device) == "triton":
        from evoquality.kernels.fidelity import fidelity_triton

        return fidelity_triton(scores, partners, valid, gamma=gamma).rewards
    return _fidelity_ref(scores, partners, valid, gamma)


@torch.no_grad()
def fidelity_advantages(
    scores: torch.Tensor,
    partners: Union[Partners, torch.Tensor],
    p_star: Optional[torch.Tensor] = None,
    *,
    valid: Optional[torch.Tensor] = None,
    gamma: float = GAMMA,
    scale: str = "group",
    eps: float = EPS_ADV,
) -> FidelityAdvantages:
    """Rewards and advantages (B, G) float32 in one kernel launch on CUDA (scale "batch" adds a global-std pass)."""
    scores, partners, valid = _check(scores, partners, p_star, valid, gamma)
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if not (isinstance(eps, (int, float)) and eps > 0):
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    if _backend.kernel_provider(scores.device) == "triton":
        from evoquality.kernels.fidelity import fidelity_triton

        return fidelity_triton(scores, partners, valid, gamma=gamma, scale=scale, eps=eps)
    rewards = _fidelity_ref(scores, partners, valid, gamma)
    return FidelityAdvantages(rewards, group_advantages_ref(rewards, scale=scale, eps=eps))
