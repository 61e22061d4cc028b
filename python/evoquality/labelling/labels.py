"""From stored votes to pseudo-labels (docs/method.md, "Stage 1", step 3) — and the reader the trainer uses.

`labels.jsonl` holds one object per labelled pair::

    {"pair": int, "image_i": str, "image_j": str, "p_star": float, "votes_i": int, "votes_j": int,
     "invalid": int, "flagged": bool}

p_star is the probability that image_i is better (hard labels: 0 / 0.5 / 1). votes_* count valid votes; invalid
counts unparseable answers (not votes). flagged marks |votes_i - votes_j| < min_margin. In score mode the counts
are over the K x K sample pairs of the two images (votes_i: image_i's score strictly higher) and invalid counts
the two images' unparseable scores.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Union

import numpy as np

from evoquality._files import atomic_write, read_jsonl
from evoquality.labelling.votes import decode_votes

LABELS_FILE = "labels.jsonl"
LABEL_KEYS = ("image_i", "image_j", "p_star", "votes_i", "votes_j", "invalid", "flagged")


def compare_labels(
    pairs: list[dict], records: dict[int, dict], *, label: str, min_margin: int, no_votes: str
) -> tuple[list[dict], dict]:
    """Tally the voted pairs with the vote-tally op.

    pairs: rows of pairs.jsonl ({"pair", "image_i", "image_j"}); records: stored vote records by pair id.
    Returns (label rows in pair order, arrays for the summary: votes/swapped/valid (M, K) of the voted pairs).
    """
    import torch

    from evoquality.ops.vote_tally import vote_tally

    voted = [p for p in pairs if p["pair"] in records and "dropped" not in records[p["pair"]]]
    orders = [records[p["pair"]]["orders"] for p in voted]
    answers = [records[p["pair"]]["answers"] for p in voted]
    votes, swapped, valid = decode_votes(orders, answers)
    if not voted:
        return [], {"votes": votes, "swapped": swapped, "valid": valid}
    tally = vote_tally(
        torch.from_numpy(votes), torch.from_numpy(swapped), torch.from_numpy(valid),
        label=label, min_margin=min_margin,
    )
    wins_i, wins_j = tally.wins_i.tolist(), tally.wins_j.tolist()
    invalid, p_star, low = tally.n_invalid.tolist(), tally.p_star.tolist(), tally.low_margin.tolist()
    rows = []
    for m, p in enumerate(voted):
        if no_votes == "drop" and wins_i[m] + wins_j[m] == 0:
            continue
        rows.append({
            "pair": p["pair"], "image_i": p["image_i"], "image_j": p["image_j"], "p_star": float(p_star[m]),
            "votes_i": int(wins_i[m]), "votes_j": int(wins_j[m]), "invalid": int(invalid[m]),
            "flagged": bool(low[m]),
        })
    return rows, {"votes": votes, "swapped": swapped, "valid": valid}


def write_labels(round_dir: Union[str, Path], rows: list[dict]) -> Path:
    path = Path(round_dir) / LABELS_FILE
    atomic_write(path, "".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_labels(round_dir: Union[str, Path]) -> list[dict]:
    """The labelled pairs of a finished round directory (see the module docstring for the keys).

    Raises FileNotFoundError when the round has not been merged yet, ValueError on a malformed row.
    """
    path = Path(round_dir) / LABELS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"round_dir: {str(round_dir)!r} has no {LABELS_FILE} (labelling not finished?)")
    rows = []
    for lineno, row in read_jsonl(path):
        missing = [k for k in LABEL_KEYS if k not in row]
        if missing:
            raise ValueError(f"{path}: line {lineno} lacks {missing}")
        if not (isinstance(row["p_star"], (int, float)) and 0.0 <= row["p_star"] <= 1.0):
            raise ValueError(f"{path}: line {lineno}: p_star must be in [0, 1], got {row['p_star']!r}")
        rows.append(row)
    return rows


def margin_histogram(rows: list[dict]) -> dict[str, int]:
    """|votes_i - votes_j| -> number of pairs (string keys: JSON objects)."""
    counts: dict[int, int] = {}
    for r in rows:
        m = abs(r["votes_i"] - r["votes_j"])
        counts[m] = counts.get(m, 0) + 1
    return {str(k): counts[k] for k in sorted(counts)}


def position_bias(votes: np.ndarray, valid: np.ndarray) -> float:
    """Share of valid votes that chose the image shown first (0.5 = no bias); NaN without valid votes."""
    n = int(valid.sum())
    return float(((votes == 0) & valid).sum() / n) if n else math.nan
