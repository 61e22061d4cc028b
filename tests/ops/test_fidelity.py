"""Fidelity reward and the fused fidelity + advantages: hand cases of the reference, edge cases, the interpreted
kernel against a float64 reference at odd shapes (sparse and dense partners), properties, errors."""

import math

import pytest
import torch

from evoquality import _backend
from evoquality.ops.fidelity import (
    fidelity_advantages,
    fidelity_advantages_ref,
    fidelity_reward,
    fidelity_reward_ref,
)
from evoquality.ops.group_advantage import group_advantages_ref
from evoquality.ops.partners import Partners
from evoquality.ops.tolerances import check_close

NAN = float("nan")
PROVIDERS = ["torch", "triton"]


def phi(z):
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def fid(p_star, p):
    return math.sqrt(p_star * p) + math.sqrt((1 - p_star) * (1 - p))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_hand_computed_rewards(provider):
    # image 0: mu 2, var 2; image 1: mu 2, var 0; image 2: one valid sample (no statistics); image 3: mu 4, var 2
    scores = torch.tensor([[1.0, 3.0], [2.0, 2.0], [NAN, 4.0], [3.0, 5.0]])
    partners = Partners.from_pairs([[0, 1], [0, 2], [1, 3]], [1.0, 0.3, 0.25], num_images=4)
    gamma = 2.0  # makes the denominators round: sqrt(2 + 0 + 2) = 2
    with _backend.force_provider(provider):
        r = fidelity_reward(scores, partners, gamma=gamma)
    expected = [
        [fid(1.0, phi(-0.5)), fid(1.0, phi(0.5))],  # partner 2 is skipped: fewer than 2 valid samples
        [(fid(0.0, phi(0.0)) + fid(0.25, phi(-1.0))) / 2] * 2,  # mean over partners 0 and 3
        [NAN, NAN],  # fewer than 2 valid samples: no reward
        [fid(0.75, phi((3 - 2) / 2)), fid(0.75, phi((5 - 2) / 2))],  # vs image 1: sqrt(var 2 + 0 + gamma 2) = 2
    ]
    torch.testing.assert_close(r, torch.tensor(expected), atol=1e-6, rtol=0, equal_nan=True)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_zero_variance_on_both_sides_is_a_step_of_width_sqrt_gamma(provider):
    scores = torch.tensor([[2.0, 2.0], [2.0, 2.0], [3.0, 3.0]])
    partners = Partners.from_pairs([[0, 1], [2, 1]], [1.0, 1.0], num_images=3)
    with _backend.force_provider(provider):
        r = fidelity_reward(scores, partners)
    # q == mu_j: Phi(0) = 1/2; q - mu_j = +-1 over sqrt(gamma) = 1e-3: Phi = 1 or 0, matching the labels exactly
    assert r[0].tolist() == pytest.approx([math.sqrt(0.5)] * 2, abs=1e-7)
    assert r[2].tolist() == [1.0, 1.0]
    assert r[1].tolist() == pytest.approx([(math.sqrt(0.5) + 1.0) / 2] * 2, abs=1e-7)  # vs 0: tie; vs 2: p*=0, p=0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_g1_invalid_groups_and_isolated_images_get_nan(provider):
    one = torch.tensor([[3.0], [4.0]])
    pairs = Partners.from_pairs([[0, 1]], [1.0], num_images=2)
    with _backend.force_provider(provider):
        assert fidelity_reward(one, pairs).isnan().all()  # G = 1: no variance anywhere
        out = fidelity_advantages(one, pairs)
    assert out.advantages.tolist() == [[0.0], [0.0]]
    scores = torch.tensor([[NAN, NAN, NAN], [1.0, 2.0, 3.0], [2.0, 2.5, float("inf")], [1.0, 5.0, 3.0]])
    partners = Partners.from_pairs([[0, 1], [1, 2]], [0.5, 0.5], num_images=4)  # image 3 has no partner
    with _backend.force_provider(provider):
        out = fidelity_advantages(scores, partners)
    nan = out.rewards.isnan()
    assert nan[0].all() and nan[3].all() and nan[2].tolist() == [False, False, True] and not nan[1].any()
    assert (out.advantages[nan] == 0).all()


def random_case(b, g, dense, seed, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    scores = (1 + 4 * torch.rand(b, g, generator=gen)).to(dtype)
    scores[torch.rand(b, g, generator=gen) < 0.1] = NAN
    valid = torch.rand(b, g, generator=gen) < 0.9
    if b > 2:
        scores[1] = NAN  # an all-invalid image
        scores[2, :1] = 3.0  # identical samples: zero variance
        scores[2, 1:] = 3.0
    if dense:
        mask = torch.rand(b, b, generator=gen) < 0.4  # not symmetric: partners of i need not list i
        mask.fill_diagonal_(False)
        p_star = torch.rand(b, b, generator=gen)
        p_star[torch.rand(b, b, generator=gen) < 0.3] = 1.0
        return scores, (mask, p_star), valid
    perm = torch.randperm(b, generator=gen)
    pairs = torch.stack([perm[: b // 2], perm[b // 2 : 2 * (b // 2)]], 1)  # disjoint pairs, as the trainer builds
    extra = torch.stack([perm[: b // 4], perm[(b // 2) + 1 : (b // 2) + 1 + b // 4]], 1) if b >= 8 else pairs[:0]
    pairs = torch.cat([pairs, extra])  # some images get 2 partners
    p_star = torch.where(torch.rand(len(pairs), generator=gen) < 0.5, torch.rand(len(pairs), generator=gen), 0.0)
    return scores, (Partners.from_pairs(pairs, p_star, num_images=b), None), valid


SHAPES = [(b, g) for b in (1, 3, 7, 64) for g in (1, 2, 5, 32)]


@pytest.mark.parametrize("dense", [False, True], ids=["csr", "dense"])
@pytest.mark.parametrize("b, g", SHAPES)
def test_fused_kernel_matches_float64_reference(b, g, dense):
    scores, (partners, p_star), valid = random_case(b, g, dense, seed=1000 * b + g + dense)
    scale = ("group", "batch", "none")[(b + g) % 3]
    with _backend.force_provider("triton"):
        fast = fidelity_advantages(scores, partners, p_star, valid=valid, scale=scale)
    ref = fidelity_advantages_ref(scores.double(), partners, p_star, valid=valid, scale=scale)
    torch32 = fidelity_advantages_ref(scores, partners, p_star, valid=valid, scale=scale)
    assert fast.rewards.dtype == torch.float32 and ref.rewards.dtype == torch.float64
    check_close("reward", fast.rewards, ref.rewards, torch32.rewards)
    # advantages amplify reward rounding by 1 / (std + eps): judge them on the kernel's own rewards, so the check
    # isolates the in-kernel advantage arithmetic from the (already checked) reward conditioning
    adv64 = group_advantages_ref(fast.rewards.double(), scale=scale)
    check_close("advantage", fast.advantages, adv64, group_advantages_ref(fast.rewards, scale=scale))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("dense", [False, True], ids=["csr", "dense"])
def test_reward_kernel_with_other_input_dtypes(dtype, dense):
    scores, (partners, p_star), valid = random_case(7, 5, dense, seed=5, dtype=dtype)
    with _backend.force_provider("triton"):
        fast = fidelity_reward(scores, partners, p_star, valid=valid)
    ref = fidelity_reward_ref(scores.double(), partners, p_star, valid=valid)  # same (upcast) input values
    check_close("reward", fast, ref, fidelity_reward_ref(scores.float(), partners, p_star, valid=valid))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_properties(provider):
    scores, (partners, _), valid = random_case(64, 32, False, seed=11)
    with _backend.force_provider(provider):
        out = fidelity_advantages(scores, partners, valid=valid)
    r = out.rewards[~out.rewards.isnan()]
    assert r.numel() > 0 and (r >= 0).all() and (r <= 1).all()
    finite_groups = ~out.rewards.isnan().any(1)
    sums = out.advantages[finite_groups].sum(1)
    torch.testing.assert_close(sums, torch.zeros_like(sums), atol=5e-6, rtol=0)
    torch.testing.assert_close(out.advantages, group_advantages_ref(out.rewards), atol=2e-5, rtol=0)
    # a prediction at the extreme matching a hard label earns exactly 1, the opposite extreme 0
    far = torch.tensor([[4.9, 5.0, 4.95], [1.0, 1.1, 1.05]])
    with _backend.force_provider(provider):
        right = fidelity_reward(far, Partners.from_pairs([[0, 1]], [1.0], num_images=2))
        wrong = fidelity_reward(far, Partners.from_pairs([[0, 1]], [0.0], num_images=2))
    assert right.tolist() == [[1.0] * 3] * 2 and wrong.tolist() == [[0.0] * 3] * 2


def test_dense_and_csr_partners_agree():
    scores, (partners, _), valid = random_case(7, 5, False, seed=3)
    mask, p_star = partners.to_dense()
    dense = fidelity_reward(scores, mask, p_star, valid=valid)
    torch.testing.assert_close(dense, fidelity_reward(scores, partners, valid=valid), equal_nan=True)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_outputs_never_require_grad(provider):
    scores = torch.rand(3, 4, requires_grad=True)
    with _backend.force_provider(provider):
        out = fidelity_advantages(scores, Partners.from_pairs([[0, 1], [1, 2]], [1.0, 0.0], num_images=3))
    assert not out.rewards.requires_grad and not out.advantages.requires_grad


def test_errors_name_the_argument():
    s = torch.rand(3, 4)
    p = Partners.from_pairs([[0, 1]], [1.0], num_images=3)
    mask = torch.zeros(3, 3, dtype=torch.bool)
    cases = [
        (lambda: fidelity_reward(s[0], p), r"scores must have shape \(B, G\), got \(4,\)"),
        (lambda: fidelity_reward(s.long(), p), "scores must have dtype"),
        (lambda: fidelity_reward(s[:, :0], p), "G >= 1"),
        (lambda: fidelity_reward(s, p, valid=torch.ones(3, 3, dtype=torch.bool)),
         r"valid must have the shape of scores \(3, 4\)"),
        (lambda: fidelity_reward(s, p, valid=torch.ones(3, 4)), "valid must have dtype"),
        (lambda: fidelity_reward(s[:2], p), "partners must describe B=2 images"),
        (lambda: fidelity_reward(s, mask), r"p_star \(B, B\) is required"),
        (lambda: fidelity_reward(s, p, torch.zeros(3, 3)), "p_star must be None"),
        (lambda: fidelity_reward(s, [[0, 1]]), "partners must be a Partners"),
        (lambda: fidelity_reward(s, mask, torch.zeros(2, 2)), r"p_star must have the shape of mask \(3, 3\)"),
        (lambda: fidelity_reward(s, ~mask & ~torch.eye(3, dtype=torch.bool), torch.full((3, 3), 2.0)),
         r"p_star must lie in \[0, 1\]"),
        (lambda: fidelity_reward(s, p, gamma=0.0), "gamma must be a positive finite number"),
        (lambda: fidelity_advantages(s, p, scale="global"), "scale must be one of"),
        (lambda: fidelity_advantages(s, p, eps=-1.0), "eps must be a positive number"),
        # devices: "meta" stands in for a second device on a CPU-only machine
        (lambda: fidelity_reward(s.to("meta"), p), r"partners must be on the device of scores \(meta\)"),
        (lambda: fidelity_reward(s, p, valid=torch.ones(3, 4, dtype=torch.bool, device="meta")),
         r"valid must be on the device of scores \(cpu\)"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
