import numpy as np
import pytest

from evoquality.labelling.votes import (assemble_answers, decode_votes, derive_seed, encode_orders, pair_requests,
                                        vote_orders)
from evoquality.prompts import parse_choice


@pytest.mark.parametrize("k", [1, 2, 5, 32])
def test_balanced_orders_split_evenly(k):
    counts = [int(vote_orders(0, pid, k, "balanced").sum()) for pid in range(200)]
    assert all(c in (k // 2, (k + 1) // 2) for c in counts)
    if k % 2:  # the odd vote's order is a coin flip
        assert 60 < sum(c == k // 2 for c in counts) < 140


def test_orders_are_seeded_and_vary():
    a = vote_orders(7, 3, 32, "random")
    assert np.array_equal(a, vote_orders(7, 3, 32, "random"))
    assert not np.array_equal(a, vote_orders(7, 4, 32, "random"))
    share = np.mean([vote_orders(7, p, 32, "random").mean() for p in range(300)])
    assert abs(share - 0.5) < 0.02
    with pytest.raises(ValueError, match="order design must be one of"):
        vote_orders(0, 0, 4, "alternating")
    with pytest.raises(ValueError, match="votes must be >= 1"):
        vote_orders(0, 0, 0)


def test_derive_seed_is_stable_and_distinct():
    assert derive_seed(1, 2, 3) == derive_seed(1, 2, 3)
    assert len({derive_seed(0, p, o) for p in range(100) for o in range(3)}) == 300
    assert 0 <= derive_seed(2**40, 5) < 2**63


def test_pair_requests_one_per_order_with_counts():
    swapped = np.array([True, False, False, True, False])
    reqs = pair_requests(["m"], "A", "B", swapped, seed=0, pair_id=9)
    assert [(flag, r.images, r.n) for flag, r in reqs] == [(False, ("A", "B"), 3), (True, ("B", "A"), 2)]
    assert reqs[0][1].seed != reqs[1][1].seed
    only_canonical = pair_requests(["m"], "A", "B", np.zeros(4, bool), seed=0, pair_id=9)
    assert [(flag, r.n) for flag, r in only_canonical] == [(False, 4)]


def test_assemble_answers_restores_vote_order():
    swapped = np.array([True, False, True, False])
    texts = {False: ["\\boxed{0}", "junk"], True: ["\\boxed{1}", "\\boxed{0}"]}
    answers, ordered = assemble_answers(swapped, texts, parse_choice)
    assert ordered == ["\\boxed{1}", "\\boxed{0}", "\\boxed{0}", "junk"]
    assert answers == "100x"
    assert encode_orders(swapped) == "1010"


def test_decode_votes_arrays():
    votes, swapped, valid = decode_votes(["1010", "0000"], ["100x", "x11x"])
    assert votes.tolist() == [[1, 0, 0, 0], [0, 1, 1, 0]]
    assert swapped.tolist() == [[True, False, True, False], [False] * 4]
    assert valid.tolist() == [[True, True, True, False], [False, True, True, False]]
    with pytest.raises(ValueError, match="pair 1: vote strings of length 3/4, expected 4"):
        decode_votes(["1010", "000"], ["100x", "x11x"])
