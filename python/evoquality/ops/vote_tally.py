"""Stage-1 vote tally: K sampled comparisons per pair -> counts and the pseudo-label p* (docs/method.md "Stage 1", step 3).

votes[m, k] is the answer as given to the comparison prompt: 0 = "the first image shown is better", 1 = "the second".
swapped[m, k] is True when the pair (x_i, x_j) was shown as (x_j, x_i), so the canonical vote for x_i is
    for_i = (votes == 0) XOR swapped.
Votes with valid False (unparseable answers) are not votes: they are counted in `n_invalid` and excluded.

Labels (K_i = votes for x_i, K_j = votes for x_j):
    "hard" (paper, default): 1 if K_i > K_j, 0 if K_i < K_j, 0.5 if equal (also with 0 valid votes)
    "soft" ([decision]):     K_i / (K_i + K_j), 0.5 with 0 valid votes
min_margin ([decision], off = 0): pairs with |K_i - K_j| < min_margin are flagged in `low_margin`, never dropped.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch

from evoquality import _backend
from evoquality.ops import _checks

LABELS = ("hard", "soft")


class VoteTally(NamedTuple):
    wins_i: torch.Tensor  # (M,) int64: valid votes for the first image of the canonical pair (K_x)
    wins_j: torch.Tensor  # (M,) int64: valid votes for the second (K_y)
    n_invalid: torch.Tensor  # (M,) int64: unparseable votes, excluded
    p_star: torch.Tensor  # (M,) float32: P(x_i better than x_j)
    low_margin: torch.Tensor  # (M,) bool: |K_x - K_y| < min_margin


def _check(votes, swapped, valid, label, min_margin):
    votes = _checks.tensor("votes", votes, ndim=2, dtypes=_checks.INT_DTYPES + (torch.bool,), shape_doc="(M, K)")
    swapped = _checks.optional_mask("swapped", swapped, "votes", votes)
    valid = _checks.optional_mask("valid", valid, "votes", votes)
    if label not in LABELS:
        raise ValueError(f"label must be one of {LABELS}, got {label!r}")
    if not isinstance(min_margin, int) or isinstance(min_margin, bool) or min_margin < 0:
        raise ValueError(f"min_margin must be a non-negative int (a vote count), got {min_margin!r}")
    if votes.dtype != torch.bool:
        bad = (votes != 0) & (votes != 1)
        if valid is not None:
            bad &= valid
        if bool(bad.any()):
            raise ValueError(
                f"votes must be 0 or 1 wherever valid is True, got values such as {votes[bad][:3].tolist()}"
            )
    return votes, swapped, valid


def _label(wins_i: torch.Tensor, wins_j: torch.Tensor, label: str, min_margin: int):
    if label == "hard":
        p = torch.full(wins_i.shape, 0.5, dtype=torch.float32, device=wins_i.device)
        p = torch.where(wins_i > wins_j, 1.0, torch.where(wins_i < wins_j, 0.0, p))
    else:
        total = wins_i + wins_j
        p = torch.where(total > 0, wins_i.double() / total.clamp(min=1), 0.5).to(torch.float32)
    return p, (wins_i - wins_j).abs() < min_margin


@torch.no_grad()
def vote_tally_ref(
    votes: torch.Tensor,
    swapped: Optional[torch.Tensor] = None,
    valid: Optional[torch.Tensor] = None,
    *,
    label: str = "hard",
    min_margin: int = 0,
) -> VoteTally:
    """Tally votes (M, K) (see the module docstring); swapped, valid: optional (M, K) bool (default False, True)."""
    votes, swapped, valid = _check(votes, swapped, valid, label, min_margin)
    return _tally_ref(votes, swapped, valid, label, min_margin)


def _tally_ref(votes, swapped, valid, label, min_margin) -> VoteTally:
    for_i = votes == 0
    if swapped is not None:
        for_i = for_i ^ swapped
    ok = torch.ones_like(for_i) if valid is None else valid
    wins_i = (for_i & ok).sum(1)
    wins_j = (~for_i & ok).sum(1)
    n_invalid = (~ok).sum(1)
    p, low = _label(wins_i, wins_j, label, min_margin)
    return VoteTally(wins_i, wins_j, n_invalid, p, low)


@torch.no_grad()
def vote_tally(
    votes: torch.Tensor,
    swapped: Optional[torch.Tensor] = None,
    valid: Optional[torch.Tensor] = None,
    *,
    label: str = "hard",
    min_margin: int = 0,
) -> VoteTally:
    """Tally votes (M, K) into exact counts and p* (M,), dispatched by `_backend`."""
    votes, swapped, valid = _check(votes, swapped, valid, label, min_margin)
    if _backend.kernel_provider(votes.device) == "triton":
        from evoquality.kernels.vote_tally import vote_tally_triton

        return vote_tally_triton(votes, swapped, valid, label=label, min_margin=min_margin)
    return _tally_ref(votes, swapped, valid, label, min_margin)
