"""Run stage 2 once: labelled pairs + a checkpoint in, an evolved checkpoint out — resumable at every step.

    out/
      checkpoint-N/      TRL/transformers checkpoints (model, optimizer, scheduler, RNG, sampler position)
      metrics.jsonl      one line per logged step (rewards, parse failures, time breakdown, ...)
      model/             the final evolved checkpoint, written to model.partial/ and renamed when complete
      train_summary.json what was trained on (pairs, skipped label records by reason, pairs the sampler could not
                         place in each pass) and the final metrics

A killed run started again with the same arguments resumes from the newest checkpoint; a finished one (model/
present) is not retrained.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Optional, Union

from evoquality.training.config import TrainConfig, config_to_dict
from evoquality.training.data import LabelledPairs, pairs_from_records, read_label_records

FINAL_DIR = "model"
SUMMARY_FILE = "train_summary.json"


def _complete(checkpoint: Path) -> bool:
    """transformers writes `trainer_state.json` last; a kill can leave it missing or cut short."""
    try:
        json.loads((checkpoint / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return True


def last_checkpoint(out_dir: Union[str, Path]) -> Optional[Path]:
    """The newest complete `checkpoint-N` in `out_dir` (an interrupted newer one is passed over)."""
    steps = [(int(p.name.split("-")[-1]), p) for p in Path(out_dir).glob("checkpoint-*")
             if p.name.split("-")[-1].isdigit()]
    for _, path in sorted(steps, reverse=True):
        if _complete(path):
            return path
    return None


def _has_full_weights(checkpoint: Path) -> bool:
    """A checkpoint whose model is a plain `save_pretrained` (not DeepSpeed/FSDP shards of their own)."""
    return any(checkpoint.glob("*.safetensors")) and (checkpoint / "config.json").is_file()


def final_model_dir(out_dir: Union[str, Path]) -> Path:
    return Path(out_dir) / FINAL_DIR


def load_pairs(labels: Union[str, Path]) -> LabelledPairs:
    pairs = pairs_from_records(read_label_records(labels))
    if len(pairs) == 0:
        reasons = dict(pairs.skipped) or {"no records": 1}
        raise ValueError(f"labels: {str(labels)!r} yields no usable labelled pair (skipped: {reasons})")
    return pairs


def train_stage(
    model: Union[str, Path],
    labels: Union[str, Path, LabelledPairs],
    out_dir: Union[str, Path],
    config: TrainConfig,
    *,
    ref_model: Optional[Union[str, Path]] = None,
    image_loader=None,
) -> Path:
    """Train `model` on the labelled pairs and write the evolved checkpoint to `out_dir/model`; returns its path.

    model: checkpoint directory of the policy. labels: a stage-1 round directory, its labels.jsonl, or pairs.
    ref_model: checkpoint of the frozen KL reference (default: `model` itself, i.e. the round start).
    Runs under `accelerate launch` unchanged (every process calls it).
    """
    from accelerate import PartialState

    from evoquality.modeling import inspect_checkpoint, load_policy
    from evoquality.training.trainer import FidelityGRPOTrainer

    out_dir = Path(out_dir)
    final = final_model_dir(out_dir)
    if (final / "config.json").is_file():
        return final  # finished earlier: never retrain over a completed stage
    inspect_checkpoint(model)
    if ref_model is not None:
        inspect_checkpoint(ref_model)
    pairs = labels if isinstance(labels, LabelledPairs) else load_pairs(labels)

    state = PartialState(cpu=config.use_cpu)
    device = state.device
    resume = last_checkpoint(out_dir)
    # Trainer's own resume loads a Qwen2.5-VL checkpoint's weights with `load_state_dict(strict=False)`, which
    # silently skips every tensor because transformers 5 saves them under the original (pre-conversion) key names.
    # So the policy is loaded from the checkpoint with `from_pretrained` (which converts the keys), and the Trainer
    # restores only the optimizer, scheduler, RNG and step. The KL reference stays the round start.
    weights_from = resume if resume is not None and _has_full_weights(resume) else None
    policy = load_policy(
        weights_from or model, device=str(device), dtype=config.model_dtype,
        attn_implementation=config.attn_implementation,
    )
    args = config.to_grpo_config(out_dir, num_processes=state.num_processes, cuda=device.type == "cuda")
    trainer = FidelityGRPOTrainer(
        policy.model,
        pairs=pairs,
        config=config,
        args=args,
        processing_class=policy.processor,
        ref_model_path=ref_model or (model if weights_from else None),
        image_loader=image_loader,
        weights_loaded_from=weights_from,
    )
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)

    partial = out_dir / (FINAL_DIR + ".partial")
    if state.is_main_process and partial.exists():
        shutil.rmtree(partial)
    state.wait_for_everyone()
    trainer.save_model(str(partial))  # collective under DeepSpeed/FSDP: every process calls it
    state.wait_for_everyone()
    if state.is_main_process:
        summary = {
            "model": str(model),
            "ref_model": str(ref_model or model),
            "pairs": len(pairs),
            "images": len(pairs.images),
            "skipped_label_records": dict(pairs.skipped),
            # Per pass of this process's run (a resumed run lists the passes since the resume).
            "sampler_passes": trainer.pair_sampler.passes if trainer.pair_sampler is not None else [],
            "resumed_from": str(resume) if resume else None,
            "global_step": trainer.state.global_step,
            "train_metrics": result.metrics,
            "config": config_to_dict(config),
        }
        (partial / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str))
        os.replace(partial, final)  # the stage counts as done only once the whole checkpoint is in place
        shutil.copyfile(final / SUMMARY_FILE, out_dir / SUMMARY_FILE)
    state.wait_for_everyone()
    return final
