"""Run stage 2 once: labelled pairs + a checkpoint in, an evolved checkpoint out — resumable at every step.

    out/
      checkpoint-N/      TRL/transformers checkpoints (model, optimizer, scheduler, RNG, sampler position; under
                         FSDP/ZeRO-3 the engine's own sharded state)
      metrics.jsonl      one line per logged step (rewards, parse failures, time breakdown, ...)
      model/             the final evolved checkpoint, written to model.partial/ and renamed when complete; a plain
                         `save_pretrained` checkpoint under every engine
      train_summary.json what was trained on (pairs, skipped label records by reason, pairs the sampler could not
                         place in each pass) and the final metrics

A killed run started again with the same arguments resumes from the newest checkpoint; a finished one (model/
present) is not retrained.

Under `accelerate launch`, a launch that accelerate would quietly run as something else (FSDP or DeepSpeed as DDP,
N processes as N lone ones) is an error before training starts.
"""

from __future__ import annotations

import dataclasses
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


def _requested(engine: str) -> bool:
    """Whether `accelerate launch` was asked for this engine (its config sets ACCELERATE_USE_<ENGINE>)."""
    return os.environ.get(f"ACCELERATE_USE_{engine}", "false").lower() == "true"


def _deepspeed_on_cpu(config: TrainConfig) -> bool:
    return _requested("DEEPSPEED") and not config.use_cpu and os.environ.get("DS_ACCELERATOR") == "cpu"


def _check_processes(state) -> None:
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if state.num_processes != launched:
        raise RuntimeError(
            f"launched as {launched} processes but accelerate runs {state.num_processes} (no distributed backend "
            f"for device {state.device.type!r}): each process would train alone. On CPU set use_cpu (or, for "
            f"DeepSpeed, DS_ACCELERATOR=cpu)")


def process_state(config: TrainConfig):
    """accelerate's process state for a stage-2 run (`evolve` takes it before stage 1 too), refusing a launch whose
    processes accelerate would count wrong."""
    from accelerate import PartialState

    # accelerate 1.15 finds no device backend on a CUDA-less host and counts one process while DeepSpeed runs several
    # (DeepSpeed's CPU accelerator itself falls back to gloo when oneCCL is absent). transformers rebuilds this state
    # from the trainer's `ddp_backend`, which train_stage sets to match.
    state = PartialState(cpu=config.use_cpu, **({"backend": "gloo"} if _deepspeed_on_cpu(config) else {}))
    _check_processes(state)
    return state


def _check_engine(accelerator) -> None:
    """accelerate 1.15 quietly drops an FSDP launch to DDP on CPU (it enables FSDP only for GPU-type devices), and a
    DeepSpeed launch to DDP with use_cpu: a run that asked for sharding must shard or stop."""
    from accelerate.utils import DistributedType

    _check_processes(accelerator.state)
    for engine, wanted, fix in (
        ("FSDP", DistributedType.FSDP, "accelerate runs FSDP on GPUs only: use ddp.yaml on CPU"),
        ("DEEPSPEED", DistributedType.DEEPSPEED, "DeepSpeed needs use_cpu false (on CPU: DS_ACCELERATOR=cpu)"),
    ):
        if _requested(engine) and accelerator.distributed_type != wanted:
            raise RuntimeError(f"the accelerate config asks for {engine} but this run would be "
                               f"{accelerator.distributed_type.value} on {accelerator.device.type!r}: {fix}")
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        zero = accelerator.state.deepspeed_plugin.deepspeed_config.get("zero_optimization", {})
        if zero.get("stage") == 3 and zero.get("stage3_gather_16bit_weights_on_model_save") is not True:
            # Without it transformers writes DeepSpeed's partitions instead of a model: a run that cannot end in a
            # loadable checkpoint is stopped before it trains.
            raise RuntimeError("ZeRO-3 without zero3_save_16bit_model: true (stage3_gather_16bit_weights_on_model_save)"
                               " cannot save the final model as a checkpoint: set it in the accelerate config")


def _save_final(trainer, path: Path) -> None:
    """Write the trained policy as a plain `save_pretrained` checkpoint whatever the engine's state-dict setting."""
    plugin = getattr(trainer.accelerator.state, "fsdp_plugin", None) if trainer.is_fsdp_enabled else None
    sharded = plugin is not None and "FULL_STATE_DICT" not in str(plugin.state_dict_type)
    if sharded:
        # transformers 5.24 saves nothing under FSDP unless the state dict is FULL_STATE_DICT; the checkpoints
        # stay sharded (fast, resumable), the final model is gathered once.
        kept = plugin.state_dict_type
        plugin.set_state_dict_type("FULL_STATE_DICT")
    try:
        trainer.save_model(str(path))  # collective under DeepSpeed/FSDP: every process calls it
    finally:
        if sharded:
            plugin.set_state_dict_type(kept)
    trainer.accelerator.wait_for_everyone()
    if trainer.accelerator.is_main_process and not _has_full_weights(path):
        raise RuntimeError(f"the final save wrote no full model to {path}")


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

    state = process_state(config)
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
    args_config = config
    if _deepspeed_on_cpu(config):
        args_config = dataclasses.replace(config, grpo_overrides={**config.grpo_overrides, "ddp_backend": "gloo"})
    args = args_config.to_grpo_config(out_dir, num_processes=state.num_processes, cuda=device.type == "cuda")
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
    _check_engine(trainer.accelerator)
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)

    partial = out_dir / (FINAL_DIR + ".partial")
    if state.is_main_process and partial.exists():
        shutil.rmtree(partial)
    state.wait_for_everyone()
    _save_final(trainer, partial)
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
