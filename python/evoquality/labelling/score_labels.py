"""Score-mode labels (beyond the paper): K sampled scores per image, then p* for each pair from the win-matrix op.

N·K generations instead of M·K: with 20,000 pairs over 10,000 images and K = 32 that halves the generations, and a
pair costs nothing once both images are scored (so ``score_pairs='all'`` labels every pair of the pool).

p* = P(s_i > s_j) over all valid sample pairs, ties counting 1/2 (`evoquality.ops.win_matrix`). The hard label
rounds it (1 above 1/2, 0 below, 0.5 at exactly 1/2); soft keeps it; mean ignores it and compares the two images'
mean valid scores instead (score averaging: 1, 0, or 0.5 when equal). The row's counts are over the K x K sample
pairs: votes_i = pairs where image_i's score is strictly higher, votes_j strictly lower (ties in neither), so
p* = (votes_i + ties / 2) / (n_i n_j); invalid = unparseable scores of the two images; min_margin compares
|votes_i - votes_j| in these units. A pair where either image has no valid score has no p*: a tie, or dropped.
"""

from __future__ import annotations

import math

import numpy as np


def score_labels(pairs: list[dict], records: dict[int, dict], plan, *, label: str, min_margin: int,
                 no_votes: str) -> tuple[list[dict], dict]:
    import torch

    from evoquality.ops.win_matrix import win_matrix

    index_of = {p: k for k, p in enumerate(plan.pool.paths)}
    scored = sorted(i for i, r in records.items() if "scores" in r)
    row_of = {img: r for r, img in enumerate(scored)}
    k = max((len(records[i]["scores"]) for i in scored), default=0)
    scores = torch.full((len(scored), k), float("nan"), dtype=torch.float32)
    for r, img in enumerate(scored):
        scores[r] = torch.tensor([math.nan if x is None else float(x) for x in records[img]["scores"]])
    valid = torch.isfinite(scores)

    usable, dropped = [], 0
    for p in pairs:
        i, j = index_of[p["image_i"]], index_of[p["image_j"]]
        if i in row_of and j in row_of:
            usable.append((p, row_of[i], row_of[j]))
        elif i in records and j in records:
            dropped += 1  # one of the two images was rejected
    rows: list[dict] = []
    if usable:
        idx = torch.tensor([[a, b] for _, a, b in usable], dtype=torch.int64)
        prob = win_matrix(scores, valid, pairs=idx).double()
        n_valid = valid.sum(1)
        wins, losses = _strict_counts(scores, valid, idx)
        means = torch.where(valid, scores, 0.0).sum(1).double() / n_valid.clamp(min=1)
        for m, (p, a, b) in enumerate(usable):
            pm = float(prob[m])
            vi, vj = int(wins[m]), int(losses[m])
            if math.isnan(pm):
                if no_votes == "drop":
                    continue
                p_star = 0.5
            elif label == "mean":
                mi, mj = float(means[a]), float(means[b])
                p_star = 1.0 if mi > mj else 0.0 if mi < mj else 0.5
            elif label == "hard":
                p_star = 1.0 if pm > 0.5 else 0.0 if pm < 0.5 else 0.5
            else:
                p_star = pm
            rows.append({
                "pair": p["pair"], "image_i": p["image_i"], "image_j": p["image_j"], "p_star": p_star,
                "votes_i": vi, "votes_j": vj, "invalid": int(2 * k - n_valid[a] - n_valid[b]),
                "flagged": abs(vi - vj) < min_margin, "p_win": None if math.isnan(pm) else pm,
            })
    finite = scores[valid]
    stats = {
        "voted_pairs": usable, "dropped_pairs": dropped, "samples": int(scores.numel()),
        "valid_samples": int(valid.sum()), "images_scored": len(scored),
        "score_mean": float(finite.mean()) if finite.numel() else math.nan,
        "score_std": float(finite.std()) if finite.numel() > 1 else math.nan,
    }
    return rows, stats


def _strict_counts(scores, valid, pairs) -> tuple[np.ndarray, np.ndarray]:
    """Per pair (i, j): #(a > b) and #(a < b) over valid samples a of i, b of j. Invalid samples sort last (+inf)
    in j's row and are masked out as queries, so they count on neither side."""
    import torch

    inf = torch.full_like(scores, float("inf"))
    sorted_s = torch.sort(torch.where(valid, scores, inf), dim=1).values.double()
    q, seq = scores[pairs[:, 0]].double().contiguous(), sorted_s[pairs[:, 1]].contiguous()
    qok = valid[pairs[:, 0]]
    n_j = valid[pairs[:, 1]].sum(1, keepdim=True)
    below = torch.searchsorted(seq, torch.where(qok, q, 0.0), side="left")
    above = n_j - torch.searchsorted(seq, torch.where(qok, q, 0.0), side="right").clamp(max=n_j)
    wins = torch.where(qok, below.clamp(max=n_j), 0).sum(1)
    losses = torch.where(qok, above, 0).sum(1)
    return wins.numpy(), losses.numpy()
