"""Two GRPO steps of the tiny model on CPU through FidelityGRPOTrainer (TRL 1.16 underneath)."""

import math

import pytest
import torch

from evoquality.ops.fidelity import fidelity_reward_ref
from evoquality.ops.group_advantage import group_advantages_ref
from evoquality.training.config import make_config
from evoquality.training.data import pairs_from_records
from evoquality.training.trainer import FidelityGRPOTrainer, fidelity

ATOL = 1e-6  # float32 kernel vs float64 reference on rewards in [0, 1] / z-scores of O(1)


class SpyTrainer(FidelityGRPOTrainer):
    """Records what the loss actually receives and every generation batch's reward record."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.records, self.loss_advantages, self.losses = [], [], []

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        self.records.append(self.last_step)
        return out

    def _compute_loss(self, model, inputs):
        self.loss_advantages.append(inputs["advantages"].detach().clone())
        loss = super()._compute_loss(model, inputs)
        self.losses.append(loss.item())
        return loss


def _trainer(model_dir, records, out, *, cache_preprocessing=True, **overrides):
    from evoquality.modeling import load_policy

    settings = dict(num_generations=4, images_per_step=4, per_device_train_batch_size=8, max_completion_length=10,
                    max_steps=2, use_cpu=True, bf16=False, gradient_checkpointing=False, learning_rate=1e-3,
                    beta=0.05, save_steps=100, seed=0)
    settings.update(overrides)
    config = make_config(None, settings)
    policy = load_policy(model_dir, device="cpu", dtype="float32", attn_implementation="sdpa")
    return SpyTrainer(policy.model, pairs=pairs_from_records(records), config=config,
                      args=config.to_grpo_config(out), processing_class=policy.processor,
                      cache_preprocessing=cache_preprocessing)


@pytest.fixture(scope="module")
def two_steps(scoring_model_dir, tmp_path_factory):
    """Two optimizer steps; TRL's own (discarded) advantages are switched to unscaled (r - mean) behind the config's
    back, so that ours — z-scored, as the config says — are distinguishable from TRL's in what reaches the loss."""
    from conftest import write_images

    tmp = tmp_path_factory.mktemp("two-steps")
    paths = write_images(tmp / "pool", 8, seed=3)
    spec = [(0, 1, 1.0), (2, 3, 0.0), (4, 5, 0.5), (6, 7, 1.0), (1, 2, 1.0), (5, 6, 0.0)]
    records = [{"image_i": paths[i], "image_j": paths[j], "p_star": p} for i, j, p in spec]
    trainer = _trainer(scoring_model_dir, records, tmp / "out")
    trainer.scale_rewards = "none"  # TRL's attribute; our advantages follow config.scale_rewards ("group")
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    return trainer, before, records


def test_loss_finite_and_parameters_change(two_steps):
    trainer, before, _ = two_steps
    assert trainer.state.global_step == 2
    assert len(trainer.losses) == 4 and all(math.isfinite(x) for x in trainer.losses)
    changed = [n for n, p in trainer.model.named_parameters() if not torch.equal(before[n], p.detach())]
    assert len(changed) > len(before) // 2


def test_rewards_equal_the_reference_on_the_gathered_batch(two_steps):
    trainer, _, _ = two_steps
    assert len(trainer.records) == 2
    for rec in trainer.records:
        want = fidelity_reward_ref(rec.scores.double(), rec.partners.to("cpu"), gamma=1e-6)
        assert torch.equal(torch.isnan(rec.rewards), torch.isnan(want))
        ok = ~torch.isnan(want)
        assert torch.allclose(rec.rewards[ok].double(), want[ok], atol=ATOL, rtol=0)
        assert ok.any(), "no rollout parsed: the test would not exercise the reward"


def test_advantages_used_are_ours(two_steps):
    trainer, _, _ = two_steps
    # Step k's two micro-batches are the shuffled halves of generation batch k: compare as multisets.
    for k, rec in enumerate(trainer.records):
        used = torch.cat(trainer.loss_advantages[2 * k : 2 * k + 2]).sort().values
        ours = group_advantages_ref(rec.rewards.double()).reshape(-1).sort().values
        assert torch.allclose(used.double(), ours, atol=1e-5, rtol=0)
        trl_unscaled = torch.nan_to_num(rec.rewards.double() - torch.nanmean(rec.rewards.double(), 1, keepdim=True))
        if trl_unscaled.abs().max() > 1e-3:
            assert not torch.allclose(used.double(), trl_unscaled.reshape(-1).sort().values, atol=1e-3)


def test_sampler_keeps_pairs_together(two_steps):
    trainer, _, records = two_steps
    for rec in trainer.records:
        assert len(set(rec.image_ids)) == 4
        # Every image of the step meets at least one labelled partner in the same step.
        assert torch.all(rec.partners.indptr.diff() >= 1)


def test_unparseable_answers_get_no_reward(two_steps):
    trainer, _, _ = two_steps
    for rec in trainer.records:
        failed = torch.isnan(rec.scores)
        assert torch.isnan(rec.rewards[failed]).all()
        assert (rec.advantages[failed] == 0).all()


def test_reward_hook_on_crafted_completions(two_steps):
    """_calculate_rewards on answers we choose: garbage and out-of-format answers give NaN (no random score)."""
    trainer, _, records = two_steps
    a, b = records[0]["image_i"], records[0]["image_j"]  # p* = 1: a is better
    c, d = records[3]["image_i"], records[3]["image_j"]
    ids = [a] * 4 + [b] * 4 + [c] * 4 + [d] * 4
    texts = ["\\boxed{4.5}", "\\boxed{4}", "no box", "\\boxed{4.2}",
             "\\boxed{1.5}", "\\boxed{2}", "\\boxed{abc}", "\\boxed{1.1}",
             "\\boxed{3}", "\\boxed{3.5}", "\\boxed{2.5}", "\\boxed{9}",  # 9 clips to 5
             "\\boxed{3}", "\\boxed{3.1}", "\\boxed{2.9}", "\\boxed{}"]
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    inputs = [{"image_id": i} for i in ids]
    rewards = trainer._calculate_rewards(inputs, [None] * 16, completions, [[0]] * 16)
    assert rewards.shape == (16, 1)
    scores = torch.tensor([4.5, 4, math.nan, 4.2, 1.5, 2, math.nan, 1.1, 3, 3.5, 2.5, 5, 3, 3.1, 2.9, math.nan])
    want = fidelity_reward_ref(scores.view(4, 4).double(), trainer.last_step.partners, gamma=1e-6)
    got = rewards.view(4, 4)
    assert torch.equal(torch.isnan(got), torch.isnan(want)) and torch.isnan(got.view(-1)[[2, 6, 15]]).all()
    ok = ~torch.isnan(want)
    assert torch.allclose(got[ok].double(), want[ok], atol=ATOL, rtol=0)
    assert got[0, 0] > got[1, 0]  # the preferred image's high score is rewarded more than the other's


def test_unparsed_reward_option_rewards_and_ranks_answers_that_do_not_parse(two_steps):
    """`unparsed_reward`: an answer without a score gets that reward and takes part in its group's statistics, so it
    gets a negative advantage below every parsed answer; the parsed answers' rewards are unchanged."""
    trainer, _, records = two_steps
    a, b = records[0]["image_i"], records[0]["image_j"]
    ids = [a] * 4 + [b] * 4
    texts = ["\\boxed{4.5}", "\\boxed{4}", "no box", "\\boxed{4.2}",
             "\\boxed{1.5}", "\\boxed{2}", "\\boxed{1.", "\\boxed{1.1}"]  # a truncated box does not parse
    completions = [[{"role": "assistant", "content": t}] for t in texts]

    def hook():
        trainer._calculate_rewards([{"image_id": i} for i in ids], [None] * 8, completions, [[0]] * 8)
        return trainer.last_step

    plain = hook()
    trainer.config.unparsed_reward = 0.0
    try:
        filled = hook()
    finally:
        trainer.config.unparsed_reward = None
    failed = torch.isnan(plain.scores)
    assert failed.sum() == 2 and torch.isnan(plain.rewards[failed]).all() and (plain.advantages[failed] == 0).all()
    assert (filled.rewards[failed] == 0).all()
    assert torch.equal(filled.rewards[~failed], plain.rewards[~failed])
    want = group_advantages_ref(filled.rewards.double(), scale="group", eps=trainer.config.adv_eps)
    assert torch.allclose(filled.advantages.double(), want, atol=1e-5, rtol=0)
    for g in range(2):  # in each group the failed answer ranks below every parsed one
        row_failed = failed[g]
        assert filled.advantages[g][row_failed].max() < filled.advantages[g][~row_failed].min()
        assert filled.advantages[g][row_failed].max() < 0


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_advantages_follow_the_configured_scaling(two_steps, scale):
    trainer, _, records = two_steps
    ids = [r[k] for r in (records[0], records[3]) for k in ("image_i", "image_j") for _ in range(4)]
    texts = ["\\boxed{4.5}", "\\boxed{4}", "\\boxed{3}", "\\boxed{4.2}", "\\boxed{1.5}", "\\boxed{2}",
             "\\boxed{3.3}", "\\boxed{1.1}"] * 2
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    trainer.config.scale_rewards = scale
    try:
        trainer._calculate_rewards([{"image_id": i} for i in ids], [None] * 16, completions, [[0]] * 16)
    finally:
        trainer.config.scale_rewards = "group"
    rec = trainer.last_step
    want = group_advantages_ref(rec.rewards.double(), scale=scale, eps=trainer.config.adv_eps)
    assert torch.allclose(rec.advantages.double(), want, atol=1e-5, rtol=0)
    if scale != "group":
        assert not torch.allclose(rec.advantages.double(), group_advantages_ref(rec.rewards.double()), atol=1e-3)


def test_reward_hook_rejects_mixed_groups(two_steps):
    trainer, _, records = two_steps
    ids = [records[0]["image_i"]] * 3 + [records[0]["image_j"]] * 5
    completions = [[{"role": "assistant", "content": "\\boxed{3}"}]] * 8
    with pytest.raises(RuntimeError, match="a rollout group mixes images"):
        trainer._calculate_rewards([{"image_id": i} for i in ids], [None] * 8, completions, [[0]] * 8)


def test_step_metrics_and_time_breakdown_logged(two_steps):
    trainer, _, _ = two_steps
    logged = [h for h in trainer.state.log_history if "fidelity/parse_failure_rate" in h]
    assert len(logged) == 2
    for entry in logged:
        for key in ("reward", "fidelity/reward_mean", "fidelity/zero_variance_groups", "fidelity/abs_advantage_mean",
                    "score/mean", "score/p50", "kl", "time/generation", "time/preprocess", "time/reward",
                    "time/advantage", "time/forward_backward", "time/optimizer", "time/non_model_share"):
            assert key in entry, key
        assert 0 <= entry["fidelity/parse_failure_rate"] <= 1
        assert entry["time/generation"] > 0 and entry["time/forward_backward"] > 0 and entry["time/optimizer"] > 0
    assert (trainer.args.output_dir + "/metrics.jsonl") and len(
        open(trainer.args.output_dir + "/metrics.jsonl").read().splitlines()) >= 2
    # Each unique image was preprocessed once per generation batch, however many rollouts and forwards used it.
    assert trainer._cached_processor.computed == 2 * 4


def test_decoded_rows_train_exactly_as_path_rows(scoring_model_dir, tmp_path):
    """Rows carry paths (the default) or, as vLLM needs, decoded images from the store (here: the cache off): TRL
    sees the same pixels either way, so one step gives the same completions and loss."""
    from conftest import write_images

    from evoquality.io.preprocess_cache import IMAGE_ID_KEY

    paths = write_images(tmp_path / "pool", 4, seed=5)
    records = [{"image_i": paths[0], "image_j": paths[1], "p_star": 1.0},
               {"image_i": paths[2], "image_j": paths[3], "p_star": 0.0}]
    by_path = _trainer(scoring_model_dir, records, tmp_path / "a", max_steps=1)  # seeds torch (Trainer.__init__)
    assert by_path.image_store is None and by_path.train_dataset[0]["images"] == [paths[0]]
    by_path.train()
    decoded = _trainer(scoring_model_dir, records, tmp_path / "b", max_steps=1, cache_preprocessing=False)
    assert decoded.train_dataset[0]["images"][0].info[IMAGE_ID_KEY] == paths[0]
    decoded.train()
    assert by_path.losses == decoded.losses
    assert torch.equal(by_path.records[0].scores.nan_to_num(-1), decoded.records[0].scores.nan_to_num(-1))
    assert by_path._cached_processor.computed == 4 and decoded.image_store.decodes == 4


def test_placeholder_reward_function_is_never_called_per_slice():
    with pytest.raises(RuntimeError, match="computed over the global batch"):
        fidelity(prompts=[], completions=[])


def test_bad_arguments(scoring_model_dir, labelled_pool, tmp_path):
    _, records = labelled_pool
    with pytest.raises(ValueError, match="pairs holds no labelled pair"):
        _trainer(scoring_model_dir, [], tmp_path)


def test_compare_rewards_are_the_agreement_with_p_star():
    from evoquality.training.trainer import compare_rewards

    nan = math.nan
    choices = torch.tensor([[0.0, 1.0, nan], [0.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
    swapped = torch.tensor([False, True, False])
    p_star = torch.tensor([1.0, 1.0, 0.5])
    got = compare_rewards(choices, swapped, p_star)
    # Row 0 shown (i, j): "0" names i. Row 1 shown (j, i): "1" names i. Row 2 is a tie: every answer earns 1/2.
    want = torch.tensor([[1.0, 0.0, nan], [0.0, 1.0, 1.0], [0.5, 0.5, 0.5]])
    assert torch.equal(torch.isnan(got), torch.isnan(want))
    assert torch.equal(got.nan_to_num(-1), want.nan_to_num(-1))


@pytest.fixture(scope="module")
def two_steps_compare(scoring_model_dir, tmp_path_factory):
    from conftest import write_images

    tmp = tmp_path_factory.mktemp("two-steps-compare")
    paths = write_images(tmp / "pool", 8, seed=3)
    spec = [(0, 1, 1.0), (2, 3, 0.0), (4, 5, 0.5), (6, 7, 1.0), (1, 2, 1.0), (5, 6, 0.0)]
    records = [{"image_i": paths[i], "image_j": paths[j], "p_star": p} for i, j, p in spec]
    trainer = _trainer(scoring_model_dir, records, tmp / "out", train_compare=True)
    trainer.train()
    return trainer


def test_training_the_comparison_prompt_too(two_steps_compare):
    from evoquality.training.trainer import compare_rewards

    trainer = two_steps_compare
    assert trainer.state.global_step == 2 and all(math.isfinite(x) for x in trainer.losses)
    for k, rec in enumerate(trainer.records):
        c = rec.compare
        assert c is not None and len(c.pairs) == 2 == len(rec.image_ids) // 2
        # The comparison groups ask exactly the pairs whose images are scored in the same step.
        asked = {tuple(sorted(trainer.pairs.images[x] for x in trainer.pairs.pairs[p])) for p in c.pairs}
        scored = {tuple(sorted(rec.image_ids[i : i + 2])) for i in range(0, 4, 2)}
        assert asked == scored
        want = compare_rewards(c.choices, c.swapped, torch.as_tensor(trainer.pairs.p_star[c.pairs]))
        assert torch.equal(c.rewards.nan_to_num(-1), want.nan_to_num(-1))
        assert torch.allclose(c.advantages.double(), group_advantages_ref(c.rewards.double()), atol=1e-5, rtol=0)
        # What reached the loss: the advantages of all 6 groups (4 scoring + 2 comparison), 24 rollouts.
        used = torch.cat(trainer.loss_advantages[3 * k : 3 * k + 3]).sort().values
        assert used.numel() == 24
        assert torch.allclose(used.double(), rec.all_advantages.double().reshape(-1).sort().values, atol=1e-5)
        answered = torch.isfinite(c.choices)
        assert torch.equal(answered, torch.isfinite(c.rewards))  # an answer that does not parse earns nothing
    logged = [h for h in trainer.state.log_history if "compare/parse_failure_rate" in h]
    assert len(logged) == 2 and all("compare/agreement" in h for h in logged if h["compare/parse_failure_rate"] < 1)
