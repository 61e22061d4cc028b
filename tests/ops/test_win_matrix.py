"""Win matrix: hand cases, the sort/rank reference against brute force, the interpreted kernels against the
float64 reference (all pairs and pair lists), P_ij + P_ji = 1, errors."""

import pytest
import torch

from evoquality import _backend
from evoquality.ops.tolerances import check_close
from evoquality.ops.win_matrix import win_matrix, win_matrix_ref

NAN = float("nan")


def brute_force(scores: torch.Tensor) -> torch.Tensor:
    """The definition, materialising (N, N, K, K): fine for tiny N, K."""
    ok = torch.isfinite(scores)
    a, b = scores[:, None, :, None], scores[None, :, None, :]
    both = ok[:, None, :, None] & ok[None, :, None, :]
    h = ((a > b).double() + 0.5 * (a == b).double()) * both
    n = ok.sum(1).double()
    return h.sum((2, 3)) / (n[:, None] * n[None, :])


def test_hand_computed_with_ties_and_an_empty_image():
    scores = torch.tensor([[1.0, 2.0], [2.0, 3.0], [NAN, NAN]])
    p = win_matrix_ref(scores)
    # image 0 vs 1: (1,2) loss, (1,3) loss, (2,2) tie, (2,3) loss -> 0.5 / 4
    assert p[0, 1].item() == 0.125 and p[1, 0].item() == 0.875
    assert p[0, 0].item() == 0.5 and p[1, 1].item() == 0.5
    assert p[2].isnan().all() and p[:, 2].isnan().all()
    pairs = win_matrix_ref(scores, pairs=torch.tensor([[0, 1], [1, 0], [2, 0]]))
    assert pairs[:2].tolist() == [0.125, 0.875] and pairs[2].isnan()


def test_valid_mask_excludes_samples():
    scores = torch.tensor([[1.0, 9.0], [2.0, 3.0]])
    valid = torch.tensor([[True, False], [True, True]])
    assert win_matrix_ref(scores, valid)[0, 1].item() == 0.0


@pytest.mark.parametrize("n, k, block", [(1, 1, 256), (5, 3, 2), (37, 7, 8), (60, 16, 256)])
def test_reference_equals_brute_force(n, k, block):
    gen = torch.Generator().manual_seed(n + k)
    scores = torch.round(torch.rand(n, k, generator=gen, dtype=torch.float64) * 8) / 2  # many ties
    scores[torch.rand(n, k, generator=gen) < 0.15] = NAN
    if n > 3:
        scores[3] = float("inf")  # non-finite = invalid
    expected = brute_force(scores)
    got = win_matrix_ref(scores, block=block)
    torch.testing.assert_close(got, expected, atol=0, rtol=0, equal_nan=True)
    pairs = torch.randint(0, n, (13, 2), generator=gen)
    torch.testing.assert_close(
        win_matrix_ref(scores, pairs=pairs), expected[pairs[:, 0], pairs[:, 1]], atol=0, rtol=0, equal_nan=True
    )


@pytest.mark.parametrize("n, k", [(1, 1), (3, 2), (7, 5), (17, 33), (40, 32)])
@pytest.mark.parametrize("ties", [True, False])
def test_kernels_match_float64_reference(n, k, ties):
    gen = torch.Generator().manual_seed(7 * n + k)
    scores = 1 + 4 * torch.rand(n, k, generator=gen)
    if ties:
        scores = torch.round(scores * 4) / 4
    scores[torch.rand(n, k, generator=gen) < 0.1] = NAN
    valid = torch.rand(n, k, generator=gen) < 0.9
    if n > 2:
        valid[2] = False  # an image with no valid sample
    ref = win_matrix_ref(scores.double(), valid)
    pairs = torch.randint(0, n, (29, 2), generator=gen)
    with _backend.force_provider("triton"):
        fast = win_matrix(scores, valid)
        fast_pairs = win_matrix(scores, valid, pairs=pairs.to(torch.int32))
    assert fast.dtype == torch.float32
    check_close("win", fast, ref)
    check_close("win", fast_pairs, ref[pairs[:, 0], pairs[:, 1]])


@pytest.mark.parametrize("provider", ["torch", "triton"])
def test_complementary_where_both_valid(provider):
    gen = torch.Generator().manual_seed(0)
    scores = torch.round(torch.rand(23, 6, generator=gen) * 10)
    scores[4] = NAN
    with _backend.force_provider(provider):
        p = win_matrix(scores)
    both = ~torch.isnan(p)
    assert both.sum() == 22 * 22
    torch.testing.assert_close((p + p.T)[both], torch.ones(22 * 22), atol=2.4e-7, rtol=0)
    assert (p.diagonal()[both.diagonal()] == 0.5).all()


def test_cpu_reference_handles_the_issue_size_quickly():
    """N = 2,000 images x K = 32 samples (the CPU target is < 2 s; timed in benchmarks/bench_win_matrix.py)."""
    scores = torch.round(torch.rand(2000, 32, generator=torch.Generator().manual_seed(1)) * 400) / 100
    with _backend.force_provider("torch"):  # conftest's TRITON_INTERPRET would route CPU tensors to the interpreter
        p = win_matrix(scores)
    assert p.shape == (2000, 2000) and not p.isnan().any()
    sub = torch.arange(0, 2000, 97)
    torch.testing.assert_close(p[sub][:, sub].double(), brute_force(scores[sub].double()), atol=1.2e-7, rtol=0)


def test_errors_name_the_argument():
    s = torch.rand(4, 3)
    with pytest.raises(ValueError, match=r"scores must have shape \(N, K\), got \(3,\)"):
        win_matrix(s[0])
    with pytest.raises(ValueError, match="scores must have dtype"):
        win_matrix(s.long())
    with pytest.raises(ValueError, match=r"valid must have the shape of scores \(4, 3\)"):
        win_matrix(s, torch.ones(4, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"pairs must have shape \(M, 2\)"):
        win_matrix(s, pairs=torch.zeros(3, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"pairs must hold image indices in \[0, 4\)"):
        win_matrix(s, pairs=torch.tensor([[0, 4]]))
    with pytest.raises(ValueError, match="pairs must have dtype"):
        win_matrix(s, pairs=torch.tensor([[0.0, 1.0]]))
