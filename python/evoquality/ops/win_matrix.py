"""All-pairs win matrix from per-image score samples (beyond the paper: labels from sampled scores).

For images i, j with valid samples S_i, S_j (finite and `valid`; n_i = |S_i|):
    P[i, j] = (1 / (n_i n_j)) * sum_{a in S_i, b in S_j} ([a > b] + 0.5 [a == b])      (ties count 1/2)
so P[i, j] + P[j, i] = 1 and P[i, i] = 0.5 whenever both have samples; NaN when either has none.

The naive cost is O(N^2 K^2). The reference counts with sorting instead: for a block of images j it sorts their
pooled distinct values once, tabulates the cumulative per-image counts below each value, and locates every sample
of every image i in that table with a binary search: O(NK log NK + N^2 K) time, O(NK * block) memory, and only the
upper triangle is counted (P[j, i] = 1 - P[i, j]). Counts are integers or halves, exact in fp32.
"""

from __future__ import annotations

from typing import Optional

import torch

from evoquality import _backend
from evoquality.ops import _checks

_BLOCK_J = 256  # images per block of the reference: memory ~ N * K * 256 * 4 bytes per block


def _check(scores, valid, pairs):
    scores = _checks.tensor("scores", scores, ndim=2, dtypes=_checks.FLOAT_DTYPES, shape_doc="(N, K)")
    valid = _checks.optional_mask("valid", valid, "scores", scores)
    if pairs is not None:
        pairs = _checks.tensor("pairs", pairs, ndim=2, dtypes=_checks.INT_DTYPES, shape_doc="(M, 2)")
        if pairs.shape[1] != 2:
            raise ValueError(f"pairs must have shape (M, 2), got {tuple(pairs.shape)}")
        _checks.same_device("pairs", pairs, "scores", scores)
        _checks.indices_in_range("pairs", pairs, scores.shape[0])
        pairs = pairs.to(torch.int64)
    return scores, valid, pairs


def valid_samples(scores: torch.Tensor, valid: Optional[torch.Tensor]) -> torch.Tensor:
    """(N, K) bool: finite and, when given, marked valid."""
    ok = torch.isfinite(scores)
    return ok if valid is None else ok & valid


def _all_pairs_ref(s: torch.Tensor, ok: torch.Tensor, block: int) -> torch.Tensor:
    n_img, k = s.shape
    dev = s.device
    n = ok.sum(1).to(torch.float64)
    wins = torch.empty(n_img, n_img, dtype=torch.float64, device=dev)  # wins[i, j] = sum of [a > b] + [a == b] / 2
    for j0 in range(0, n_img, block):
        j1 = min(n_img, j0 + block)
        okj = ok[j0:j1].reshape(-1)
        vals = s[j0:j1].reshape(-1)[okj]
        col = torch.arange(j1 - j0, device=dev).repeat_interleave(k)[okj]
        uniq, group = torch.unique(vals, return_inverse=True)  # sorted distinct values of this block
        u = uniq.numel()
        count = torch.zeros(u, j1 - j0, dtype=torch.float32, device=dev)
        count.index_put_((group, col), torch.ones_like(vals, dtype=torch.float32), accumulate=True)
        below_or_at = torch.cumsum(count, 0)
        # rows [0, u]: values strictly below uniq[r] (r = u: below +inf); rows u+1..2u: ties at uniq[r] count 1/2;
        # the last row (zeros) absorbs invalid samples.
        zeros = torch.zeros(1, j1 - j0, dtype=torch.float32, device=dev)
        table = torch.cat([below_or_at - count, below_or_at[-1:] if u else zeros, below_or_at - 0.5 * count, zeros])
        q = s[j0:].reshape(-1)
        pos = torch.searchsorted(uniq, q)
        hit = uniq[pos.clamp(max=max(u - 1, 0))] == q if u else torch.zeros_like(q, dtype=torch.bool)
        row = torch.where(hit, pos + u + 1, pos)
        row = torch.where(ok[j0:].reshape(-1), row, torch.full_like(row, 2 * u + 1))
        cnt = torch.index_select(table, 0, row).view(n_img - j0, k, j1 - j0).sum(1).to(torch.float64)
        wins[j0:, j0:j1] = cnt
        wins[j0:j1, j0:] = n[j0:j1, None] * n[None, j0:] - cnt.T  # each valid sample pair is won, lost or tied
    return wins / (n[:, None] * n[None, :])


def _pairs_ref(s: torch.Tensor, ok: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    n = ok.sum(1).to(torch.float64)
    # invalid samples sort last as +inf: a finite query never counts them (valid scores are finite)
    sorted_s = torch.sort(torch.where(ok, s, torch.full_like(s, float("inf"))), dim=1).values
    pi, pj = pairs[:, 0], pairs[:, 1]
    seq, q = sorted_s[pj].contiguous(), s[pi].contiguous()
    below = torch.searchsorted(seq, q, side="left")
    at_or_below = torch.searchsorted(seq, q, side="right")
    wins = torch.where(ok[pi], (below + at_or_below).to(torch.float64) * 0.5, 0.0).sum(1)
    return wins / (n[pi] * n[pj])


@torch.no_grad()
def win_matrix_ref(
    scores: torch.Tensor, valid: Optional[torch.Tensor] = None, *, pairs: Optional[torch.Tensor] = None,
    block: int = _BLOCK_J,
) -> torch.Tensor:
    """P(s_i > s_j) with ties 1/2 for scores (N, K): (N, N) for all pairs, or (M,) for `pairs` (M, 2) int.

    float64 output for float64 scores, else float32; NaN where either image has no valid sample.
    """
    scores, valid, pairs = _check(scores, valid, pairs)
    return _ref(scores, valid, pairs, block)


def _ref(scores, valid, pairs, block=_BLOCK_J):
    out_dtype = _checks.compute_dtype(scores.dtype)
    ok = valid_samples(scores, valid)
    s = scores.to(torch.float64)  # the sort keys: exact for every input dtype
    if pairs is None:
        return _all_pairs_ref(s, ok, block).to(out_dtype)
    return _pairs_ref(s, ok, pairs).to(out_dtype)


@torch.no_grad()
def win_matrix(scores: torch.Tensor, valid: Optional[torch.Tensor] = None, *, pairs: Optional[torch.Tensor] = None):
    """(N, N) or (M,) float32 win probabilities, dispatched by `_backend` (tiled Triton kernel on CUDA)."""
    scores, valid, pairs = _check(scores, valid, pairs)
    if _backend.kernel_provider(scores.device) == "triton":
        from evoquality.kernels.win_matrix import win_matrix_triton

        return win_matrix_triton(scores, valid_samples(scores, valid), pairs)
    return _ref(scores, valid, pairs)
