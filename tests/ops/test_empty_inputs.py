"""Degenerate sizes (no images, no samples, no pairs) give empty or all-NaN results, never a crash, on both paths."""

import pytest
import torch

from evoquality import _backend
from evoquality.ops.fidelity import fidelity_advantages
from evoquality.ops.group_advantage import group_advantages
from evoquality.ops.partners import Partners
from evoquality.ops.vote_tally import vote_tally
from evoquality.ops.win_matrix import win_matrix


@pytest.mark.parametrize("provider", ["torch", "triton"])
def test_empty_inputs(provider):
    none = Partners.from_pairs(torch.zeros(0, 2, dtype=torch.int64), torch.zeros(0), num_images=0)
    with _backend.force_provider(provider):
        out = fidelity_advantages(torch.zeros(0, 4), none)
        assert out.rewards.shape == (0, 4) and out.advantages.shape == (0, 4)
        assert win_matrix(torch.zeros(0, 4)).shape == (0, 0)
        assert win_matrix(torch.zeros(3, 0)).isnan().all()  # no samples: no probability
        assert win_matrix(torch.zeros(3, 0), pairs=torch.tensor([[0, 1]])).isnan().all()
        assert win_matrix(torch.zeros(3, 2), pairs=torch.zeros(0, 2, dtype=torch.int64)).shape == (0,)
        assert vote_tally(torch.zeros(0, 3, dtype=torch.int64)).p_star.shape == (0,)
        no_votes = vote_tally(torch.zeros(2, 0, dtype=torch.int64))
        assert no_votes.wins_i.tolist() == [0, 0] and no_votes.p_star.tolist() == [0.5, 0.5]
        assert group_advantages(torch.zeros(0, 3)).shape == (0, 3)
