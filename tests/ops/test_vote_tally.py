"""Vote tally: hand-computed cases of the reference, the interpreted kernel == reference (exact), errors."""

import pytest
import torch

from evoquality import _backend
from evoquality.ops.vote_tally import vote_tally, vote_tally_ref

T, F = True, False


def test_swapped_votes_map_back_to_canonical_order():
    # answers 0 = first shown better; pair shown swapped in columns 1 and 3
    votes = torch.tensor([[0, 0, 1, 1]])
    swapped = torch.tensor([[F, T, F, T]])
    out = vote_tally_ref(votes, swapped)
    # canonical votes for x_i: [yes, no, no, yes]
    assert out.wins_i.tolist() == [2] and out.wins_j.tolist() == [2] and out.n_invalid.tolist() == [0]
    assert out.p_star.tolist() == [0.5]  # a tie


def test_hard_soft_labels_invalid_votes_and_margin():
    votes = torch.tensor([[0, 0, 0, 1, 7], [1, 1, 0, 0, 0], [5, 5, 5, 5, 5]])
    valid = torch.tensor([[T, T, T, T, F], [T, T, T, F, F], [F, F, F, F, F]])
    hard = vote_tally_ref(votes, None, valid, min_margin=2)
    assert hard.wins_i.tolist() == [3, 1, 0] and hard.wins_j.tolist() == [1, 2, 0]
    assert hard.n_invalid.tolist() == [1, 2, 5]
    assert hard.p_star.tolist() == [1.0, 0.0, 0.5]  # 0 valid votes: a tie
    assert hard.low_margin.tolist() == [False, True, True]
    soft = vote_tally_ref(votes, None, valid, label="soft")
    assert soft.p_star.tolist() == pytest.approx([0.75, 1 / 3, 0.5], abs=1e-7)
    assert soft.low_margin.tolist() == [False, False, False]  # min_margin 0: nothing flagged
    assert hard.wins_i.dtype == torch.int64 and hard.p_star.dtype == torch.float32


def test_single_vote_and_bool_votes():
    out = vote_tally_ref(torch.tensor([[True], [False]]))
    assert out.wins_i.tolist() == [0, 1] and out.p_star.tolist() == [0.0, 1.0]


@pytest.mark.parametrize("m, k", [(1, 1), (3, 2), (7, 33), (64, 32), (200, 5)])
@pytest.mark.parametrize("label", ["hard", "soft"])
def test_kernel_matches_reference_exactly(m, k, label):
    g = torch.Generator().manual_seed(m * 100 + k)
    votes = torch.randint(0, 2, (m, k), generator=g)
    swapped = torch.rand(m, k, generator=g) < 0.5
    valid = torch.rand(m, k, generator=g) < 0.8
    votes[~valid] = -1  # what an unparsed answer may hold: ignored because invalid
    with _backend.force_provider("triton"):
        fast = vote_tally(votes, swapped, valid, label=label, min_margin=3)
    ref = vote_tally_ref(votes, swapped, valid, label=label, min_margin=3)
    for a, b in zip(fast, ref):
        assert a.dtype == b.dtype and torch.equal(a, b)
    with _backend.force_provider("triton"):
        no_masks = vote_tally(votes.clamp(min=0).to(torch.uint8))
    assert torch.equal(no_masks.wins_i, vote_tally_ref(votes.clamp(min=0)).wins_i)


def test_errors_name_the_argument():
    votes = torch.zeros(2, 3, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"votes must have shape \(M, K\)"):
        vote_tally(votes[0])
    with pytest.raises(ValueError, match="votes must have dtype"):
        vote_tally(votes.float())
    with pytest.raises(ValueError, match=r"votes must be 0 or 1 wherever valid is True, got values such as \[2\]"):
        vote_tally(torch.tensor([[0, 2, 1]]))
    with pytest.raises(ValueError, match=r"swapped must have the shape of votes \(2, 3\)"):
        vote_tally(votes, torch.zeros(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="valid must have dtype"):
        vote_tally(votes, None, torch.ones(2, 3))
    with pytest.raises(ValueError, match="label must be one of"):
        vote_tally(votes, label="majority")
    with pytest.raises(ValueError, match="min_margin must be a non-negative int"):
        vote_tally(votes, min_margin=0.5)
