"""CSR partner lists: construction from pairs and dense masks, and the errors at the boundary."""

import pytest
import torch

from evoquality.ops.partners import Partners


def test_from_pairs_adds_both_directions_with_complementary_labels():
    p = Partners.from_pairs([[0, 2], [1, 2]], [0.75, 0.0], num_images=4)
    assert p.indptr.tolist() == [0, 1, 2, 4, 4]
    assert p.indices.tolist() == [2, 2, 0, 1]
    assert p.p_star.tolist() == [0.75, 0.0, 0.25, 1.0]
    mask, labels = p.to_dense()
    assert mask.sum().item() == 4 and bool(mask[2, 0]) and bool(mask[0, 2]) and not bool(mask[3].any())
    assert labels[2, 1].item() == 1.0


def test_from_dense_round_trips_with_to_dense():
    p = Partners.from_pairs([[0, 1], [3, 1], [2, 0]], [1.0, 0.5, 0.25], num_images=4)
    q = Partners.from_dense(*p.to_dense())
    for a, b in zip((p.indptr, p.indices, p.p_star), (q.indptr, q.indices, q.p_star)):
        assert torch.equal(a, b)


def test_empty_pair_list_gives_no_partners():
    p = Partners.from_pairs(torch.zeros(0, 2, dtype=torch.int64), torch.zeros(0), num_images=3)
    assert p.indptr.tolist() == [0, 0, 0, 0] and p.indices.numel() == 0


@pytest.mark.parametrize(
    "pairs, labels, message",
    [
        ([[0, 1], [1, 0]], [1.0, 0.0], "same pair twice"),
        ([[0, 0]], [1.0], "with itself"),
        ([[0, 5]], [1.0], r"pairs must hold image indices in \[0, 3\)"),
        ([[0, 1]], [1.5], r"p_star must lie in \[0, 1\]"),
        ([[0, 1]], [float("nan")], r"p_star must lie in \[0, 1\]"),
        ([[0, 1]], [1.0, 0.0], r"p_star must have shape \(1,\)"),
        ([0, 1], [1.0], r"pairs must have shape \(M, 2\)"),
        ([[0.0, 1.0]], [1.0], "pairs must have dtype"),
    ],
)
def test_from_pairs_rejects_bad_input(pairs, labels, message):
    with pytest.raises(ValueError, match=message):
        Partners.from_pairs(torch.tensor(pairs), torch.tensor(labels), num_images=3)


def test_from_dense_rejects_self_partner_and_shape_mismatch():
    mask = torch.eye(3, dtype=torch.bool)
    with pytest.raises(ValueError, match="own partner"):
        Partners.from_dense(mask, torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"p_star must have the shape of mask \(3, 3\)"):
        Partners.from_dense(torch.zeros(3, 3, dtype=torch.bool), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="mask must have dtype"):
        Partners.from_dense(torch.zeros(3, 3), torch.zeros(3, 3))


def test_constructor_rejects_inconsistent_csr():
    with pytest.raises(ValueError, match="indptr must start at 0"):
        Partners(torch.tensor([0, 2]), torch.tensor([0]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="one label per partner"):
        Partners(torch.tensor([0, 1, 1]), torch.tensor([1]), torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="repeat a partner"):
        Partners(torch.tensor([0, 2, 2]), torch.tensor([1, 1]), torch.tensor([1.0, 1.0]))
