"""Run by test_distributed.py, once alone and once under `accelerate launch --num_processes 2 --cpu`: one GRPO
step on a fixed global batch whose completions are a pure function of (image, global rollout position), so the
two runs see the same answers; every process writes what it computed to OUT/rank<k>.json.

    python _dist_rewards.py MODEL_DIR LABELS_JSON OUT_DIR
"""

import json
import sys
from pathlib import Path

import torch

from evoquality.modeling import load_policy
from evoquality.training.config import make_config
from evoquality.io.preprocess_cache import image_key
from evoquality.training.data import pairs_from_records
from evoquality.training.trainer import FidelityGRPOTrainer


def answer(image_id: str, rollout: int) -> str:
    """A fixed answer per (image, rollout): mostly scores, every fifth one unparseable."""
    key = sum(map(ord, Path(image_id).name)) * 7 + rollout * 13
    if key % 5 == 0:
        return "I cannot tell."
    return f"\\boxed{{{1 + (key % 400) / 100:.2f}}}"


class FixedAnswers(FidelityGRPOTrainer):
    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        tok = self.processing_class.tokenizer
        end = tok.convert_tokens_to_ids("<|im_end|>")
        start = self.accelerator.process_index * len(prompt_ids)
        out = []
        for k, imgs in enumerate(images):
            text = answer(image_key(imgs[0]), (start + k) % num_generations)
            out.append(tok(text, add_special_tokens=False)["input_ids"] + [end])
        return out, None

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        self.local_advantages = output["advantages"].tolist()
        return output


def main(model_dir: str, labels: str, out: str) -> None:
    records = json.loads(Path(labels).read_text())
    config = make_config(None, dict(num_generations=4, images_per_step=4, per_device_train_batch_size=8,
                                    max_completion_length=12, max_steps=1, use_cpu=True, bf16=False, beta=0.0,
                                    gradient_checkpointing=False, save_steps=100, seed=7, learning_rate=1e-4))
    policy = load_policy(model_dir, device="cpu", dtype="float32", attn_implementation="sdpa")
    from accelerate import PartialState

    world = PartialState(cpu=True).num_processes
    trainer = FixedAnswers(policy.model, pairs=pairs_from_records(records), config=config,
                           args=config.to_grpo_config(Path(out) / "trainer", num_processes=world),
                           processing_class=policy.processor)
    trainer.train()
    rec = trainer.last_step
    nan_to_none = lambda t: [[None if v != v else v for v in row] for row in t.tolist()]  # noqa: E731
    result = {
        "world": world,
        "image_ids": rec.image_ids,
        "scores": nan_to_none(rec.scores),
        "rewards": nan_to_none(rec.rewards),
        "advantages": rec.advantages.tolist(),
        "local_advantages": trainer.local_advantages,
        "loss_finite": all(torch.isfinite(torch.tensor(h["loss"])) for h in trainer.state.log_history if "loss" in h),
    }
    rank = trainer.accelerator.process_index
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:4])
