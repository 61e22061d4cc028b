"""Votes of one pair: which order each vote shows the images in, the requests that ask for them, and how the
answers map back to the canonical pair (docs/method.md, "Stage 1", step 2).

Per pair, vote k shows ``image_j`` first when ``swapped[k]``. All votes with the same order share one request with
n = their count, so a pair costs (at most) two prefills instead of K. Designs:

- ``balanced`` (default): exactly ⌊K/2⌋ votes per order (the odd vote's order is a coin flip), positions random. A
  model with a pure position bias then produces a tie instead of a label — the bias cancels in every pair.
- ``random``: an independent fair coin per vote (the paper's literal "randomly swapped per query").

A vote is stored as two characters: its order (``0`` canonical, ``1`` swapped) and the answer as the model gave it
(``0`` first shown, ``1`` second shown, ``x`` unparseable). Keeping the raw answer, not the mapped vote, lets the
summary measure position bias and lets the tally op do the mapping.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from evoquality.labelling.backends import GenRequest

ORDER_DESIGNS = ("balanced", "random")
INVALID = "x"


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (run seed, pair id, order, ...): stable across runs, processes and machines."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def vote_orders(seed: int, pair_id: int, k: int, design: str = "balanced") -> np.ndarray:
    """(K,) bool, True where vote k shows image_j first; a pure function of (seed, pair_id)."""
    if design not in ORDER_DESIGNS:
        raise ValueError(f"order design must be one of {ORDER_DESIGNS}, got {design!r}")
    if k < 1:
        raise ValueError(f"votes must be >= 1, got {k}")
    rng = np.random.Generator(np.random.PCG64(derive_seed(seed, pair_id, 0x0DE5)))
    if design == "random":
        return rng.random(k) < 0.5
    n_swapped = k // 2 + (int(rng.random() < 0.5) if k % 2 else 0)
    swapped = np.zeros(k, dtype=bool)
    swapped[rng.permutation(k)[:n_swapped]] = True
    return swapped


def pair_requests(
    messages: list, image_i, image_j, swapped: np.ndarray, seed: int, pair_id: int
) -> list[tuple[bool, GenRequest]]:
    """The requests of one pair: (swapped?, request) for each order that has at least one vote."""
    out = []
    for flag, images in ((False, (image_i, image_j)), (True, (image_j, image_i))):
        n = int((swapped == flag).sum())
        if n:
            out.append((flag, GenRequest(messages, images, n, derive_seed(seed, pair_id, 1 + int(flag)))))
    return out


def assemble_answers(
    swapped: np.ndarray, texts_by_order: dict, parse: Callable[[str], Optional[int]]
) -> tuple[str, list[str]]:
    """Put each order's completions back in vote order and parse them.

    texts_by_order: {False: texts of the canonical-order request, True: texts of the swapped one}, each with as many
    texts as votes in that order. Returns (answers string of '0'/'1'/'x' as shown, texts in vote order).
    """
    cursors = {False: iter(texts_by_order.get(False, ())), True: iter(texts_by_order.get(True, ()))}
    texts = [next(cursors[bool(s)]) for s in swapped]
    answers = "".join(INVALID if (c := parse(t)) is None else str(c) for t in texts)
    return answers, texts


def encode_orders(swapped: np.ndarray) -> str:
    return "".join("1" if s else "0" for s in swapped)


def decode_votes(orders: Sequence[str], answers: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stored vote strings of M pairs (all of length K) -> arrays for the tally op.

    Returns votes (M, K) int64 in {0, 1} as answered (0 where invalid), swapped (M, K) bool, valid (M, K) bool.
    """
    if len(orders) != len(answers):
        raise ValueError(f"orders and answers differ in length: {len(orders)} vs {len(answers)}")
    if not orders:
        return np.zeros((0, 0), np.int64), np.zeros((0, 0), bool), np.zeros((0, 0), bool)
    k = len(orders[0])
    for idx, (o, a) in enumerate(zip(orders, answers)):
        if len(o) != k or len(a) != k:
            raise ValueError(f"pair {idx}: vote strings of length {len(o)}/{len(a)}, expected {k}")
    o = np.frombuffer("".join(orders).encode("ascii"), dtype=np.uint8).reshape(-1, k)
    a = np.frombuffer("".join(answers).encode("ascii"), dtype=np.uint8).reshape(-1, k)
    valid = a != ord(INVALID)
    votes = np.where(valid, a - ord("0"), 0).astype(np.int64)
    return votes, o == ord("1"), valid
