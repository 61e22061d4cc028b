"""On CUDA: two bf16 GRPO steps with the compiled Triton fidelity kernel give the reference rewards/advantages."""

import pytest
import torch

from evoquality import _backend
from evoquality.ops.fidelity import fidelity_reward_ref
from evoquality.ops.group_advantage import group_advantages_ref

pytestmark = pytest.mark.gpu


def test_two_steps_on_cuda(scoring_model_dir, labelled_pool, tmp_path):
    from test_trainer import SpyTrainer

    from evoquality.modeling import load_policy
    from evoquality.training.config import make_config
    from evoquality.training.data import pairs_from_records

    _, records = labelled_pool
    config = make_config(None, dict(num_generations=4, images_per_step=4, per_device_train_batch_size=8,
                                    max_completion_length=10, max_steps=2, bf16=True, model_dtype="bfloat16",
                                    gradient_checkpointing=True, learning_rate=1e-4, beta=0.05, save_steps=100))
    policy = load_policy(scoring_model_dir, device="cuda", dtype="bfloat16")
    trainer = SpyTrainer(policy.model, pairs=pairs_from_records(records), config=config,
                         args=config.to_grpo_config(tmp_path, cuda=True), processing_class=policy.processor)
    assert _backend.kernel_provider(trainer.accelerator.device) == "triton"
    trainer.train()
    assert all(torch.isfinite(torch.tensor(trainer.losses)))
    for k, rec in enumerate(trainer.records):
        assert rec.rewards.is_cuda
        want = fidelity_reward_ref(rec.scores.double().cpu(), rec.partners.to("cpu"), gamma=1e-6)
        got = rec.rewards.double().cpu()
        assert torch.equal(torch.isnan(got), torch.isnan(want))
        ok = ~torch.isnan(want)
        assert torch.allclose(got[ok], want[ok], atol=1e-6, rtol=0)
        used = torch.cat(trainer.loss_advantages[2 * k : 2 * k + 2]).double().cpu().sort().values
        ours = group_advantages_ref(got).reshape(-1).sort().values
        assert torch.allclose(used, ours, atol=1e-4, rtol=0)
