"""Group advantages: hand cases, TRL 1.16's own computation on random inputs, kernel == reference, errors."""

import inspect
import math

import pytest
import torch

from evoquality import _backend
from evoquality.ops.group_advantage import group_advantages, group_advantages_ref
from evoquality.ops.tolerances import check_close

NAN = float("nan")


def trl_advantages(rewards: torch.Tensor, scale: str) -> torch.Tensor:
    """TRL 1.16.0 GRPOTrainer._generate_and_score_completions, multi_objective_aggregation="sum_then_normalize"
    with one reward function (trl/trainer/grpo_trainer.py lines 2765-2787 and 2810), verbatim but for names."""
    from trl.trainer.utils import nanstd

    num_generations = rewards.shape[1]
    rewards = rewards.reshape(-1)
    mean_grouped_rewards = torch.nanmean(rewards.view(-1, num_generations), dim=1)
    mean_grouped_rewards = mean_grouped_rewards.repeat_interleave(num_generations, dim=0)
    if scale in ["group", "none"]:
        if num_generations > 1:
            std_rewards = nanstd(rewards.view(-1, num_generations), dim=1)
            std_rewards = std_rewards.repeat_interleave(num_generations, dim=0)
        else:
            std_rewards = torch.zeros_like(rewards)
    elif scale == "batch":
        if rewards.numel() > 1:
            std_rewards = nanstd(rewards).expand_as(rewards)
        else:
            std_rewards = torch.zeros_like(rewards)
    advantages = rewards - mean_grouped_rewards
    if scale != "none":
        advantages = advantages / (std_rewards + 1e-4)
    advantages = torch.nan_to_num(advantages, nan=0.0)
    return advantages.view(-1, num_generations)


def test_trl_source_still_has_the_formula_we_reproduce():
    """Breaks when TRL changes its advantage code: then trl_advantages above (and our op) must be revisited."""
    from trl import GRPOTrainer

    src = inspect.getsource(GRPOTrainer._generate_and_score_completions)
    for line in (
        "mean_grouped_rewards = torch.nanmean(rewards.view(-1, num_generations), dim=1)",
        "std_rewards = nanstd(rewards.view(-1, num_generations), dim=1)",
        "std_rewards = nanstd(rewards).expand_as(rewards)",
        "advantages = rewards - mean_grouped_rewards",
        "advantages = advantages / (std_rewards + 1e-4)",
        "advantages = torch.nan_to_num(advantages, nan=0.0)",
    ):
        assert line in src, line


def random_rewards(b, g, seed):
    gen = torch.Generator().manual_seed(seed)
    r = torch.rand(b, g, generator=gen, dtype=torch.float64)
    r[torch.rand(b, g, generator=gen) < 0.2] = NAN
    if b > 2:
        r[0] = NAN  # an all-invalid group
        r[1, 1:] = NAN  # a group with one valid reward
    return r


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
@pytest.mark.parametrize("b, g", [(1, 1), (5, 1), (1, 4), (7, 8), (16, 32)])
def test_reference_matches_trl(scale, b, g):
    r = random_rewards(b, g, seed=b * 31 + g)
    ours = group_advantages_ref(r, scale=scale)
    theirs = trl_advantages(r, scale)
    # rtol 1e-7, not 1e-15: TRL's nanstd forms its Bessel factor count / (count - 1) from integer counts, which
    # true division makes float32 even for float64 rewards (relative error <= 6e-8 on the variance)
    torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=1e-7)


def test_hand_computed():
    eps = 1e-4
    a = group_advantages_ref(torch.tensor([[1.0, 2.0, 3.0], [1.0, NAN, 3.0], [5.0, NAN, NAN], [NAN, NAN, NAN]]))
    d = math.sqrt(2.0)
    expected = [[-1 / (1 + eps), 0.0, 1 / (1 + eps)], [-1 / (d + eps), 0.0, 1 / (d + eps)], [0.0] * 3, [0.0] * 3]
    torch.testing.assert_close(a, torch.tensor(expected), atol=1e-7, rtol=0)
    r = torch.tensor([[1.0, 3.0], [5.0, 7.0]])
    s = math.sqrt(20.0 / 3.0)  # unbiased std of 1, 3, 5, 7
    signs = torch.tensor([[-1.0, 1.0], [-1.0, 1.0]])
    torch.testing.assert_close(group_advantages_ref(r, scale="batch"), signs / (s + eps))
    torch.testing.assert_close(group_advantages_ref(r, scale="none"), torch.tensor([[-1.0, 1.0], [-1.0, 1.0]]))
    assert group_advantages_ref(torch.tensor([[0.3], [0.9]])).tolist() == [[0.0], [0.0]]  # G = 1


def test_infinite_rewards_are_missing():
    a = group_advantages_ref(torch.tensor([[1.0, float("inf"), 3.0]]))
    torch.testing.assert_close(a, group_advantages_ref(torch.tensor([[1.0, NAN, 3.0]])))


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
@pytest.mark.parametrize("b, g", [(1, 1), (3, 2), (7, 5), (64, 32)])
def test_kernel_matches_float64_reference(scale, b, g):
    r64 = random_rewards(b, g, seed=b + g)
    with _backend.force_provider("triton"):
        fast = group_advantages(r64.float(), scale=scale)
    ref = group_advantages_ref(r64.float().double(), scale=scale)
    assert fast.dtype == torch.float32 and not fast.requires_grad
    check_close("advantage", fast, ref, group_advantages_ref(r64.float(), scale=scale))


@pytest.mark.parametrize("provider", ["torch", "triton"])
def test_advantages_sum_to_zero_per_group(provider):
    r = torch.rand(9, 6, generator=torch.Generator().manual_seed(3))
    with _backend.force_provider(provider):
        a = group_advantages(r)
    torch.testing.assert_close(a.sum(1), torch.zeros(9), atol=2e-6, rtol=0)


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"rewards must have shape \(B, G\), got \(3,\)"):
        group_advantages(torch.zeros(3))
    with pytest.raises(ValueError, match="rewards must have dtype"):
        group_advantages(torch.zeros(2, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="scale must be one of"):
        group_advantages(torch.zeros(2, 2), scale="global")
    with pytest.raises(ValueError, match="eps must be a positive number"):
        group_advantages(torch.zeros(2, 2), eps=0.0)
