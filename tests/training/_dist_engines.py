"""Run by test_distributed.py under `accelerate launch --config_file <engine>.yaml` (a shipped config with only the
process count and precision changed): stage 2 through the product's own `train_stage` on the toy base model, with
what every process saw written to OUT for the test to compare across engines.

    python _dist_engines.py ENGINE MODEL_DIR LABELS OUT_DIR [--kill-after STEP] [--no-shim]

ENGINE is ddp, fsdp2 or zero3. OUT_DIR/steps-rank<k>.jsonl gets one line per generation batch (global scores,
rewards, advantages; this process's completion ids); OUT_DIR/engine-rank<k>.json how the policy was wrapped and how
much of it this process holds. --kill-after STEP SIGKILLs every process right after checkpoint-STEP is complete.

Test-only shim for accelerate 1.15's CPU gap (nothing in the package does this): accelerate turns a process group
into FSDP only when its device is a GPU-type one (`AcceleratorState.__init__`), so on CPU an FSDP launch stays a
MULTI_CPU (DDP) group, which `train_stage` refuses. For fsdp2 the shim makes that MULTI_CPU state FSDP with the plugin
accelerate built from the launch config, which then shards for real over gloo; --no-shim shows the refusal.
(ZeRO-3 on CPU needs no shim: `train_stage` itself gives accelerate the gloo backend under DS_ACCELERATOR=cpu.)
"""

import argparse
import json
import os
import signal
from pathlib import Path

from evoquality.training.config import make_config
from evoquality.training.stage import train_stage
from evoquality.training.trainer import FidelityGRPOTrainer


def force_fsdp_on_cpu() -> None:
    from accelerate.state import AcceleratorState
    from accelerate.utils import DistributedType

    init = AcceleratorState.__init__

    def init_then_fsdp(self, *args, fsdp_plugin=None, **kwargs):
        init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        # Every AcceleratorState() call copies the process state (MULTI_CPU) over the shared one again.
        if self.distributed_type == DistributedType.MULTI_CPU:
            if fsdp_plugin is not None and not self.__dict__.get("fsdp_plugin"):
                self.fsdp_plugin = fsdp_plugin
            if self.__dict__.get("fsdp_plugin") is not None:
                self.distributed_type = DistributedType.FSDP

    AcceleratorState.__init__ = init_then_fsdp


def engine_facts(trainer) -> dict:
    """How the policy is wrapped and how many of its parameter elements this process stores."""
    model = trainer.model
    params = list(model.parameters())
    facts = {"distributed_type": str(trainer.accelerator.distributed_type),
             "wrapper": type(trainer.model_wrapped).__name__, "num_processes": trainer.accelerator.num_processes}
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import DTensor

    facts["fsdp_modules"] = [type(m).__name__ for m in model.modules() if isinstance(m, FSDPModule)]
    facts["dtensor_params"] = sum(isinstance(p, DTensor) for p in params)
    facts["ds_params"] = sum(hasattr(p, "ds_id") for p in params)
    facts["params"] = len(params)
    if facts["fsdp_modules"]:
        facts["plain_params"] = [n for n, p in model.named_parameters() if not isinstance(p, DTensor)]
    if facts["ds_params"]:
        facts["zero_stage"] = trainer.model_wrapped.zero_optimization_stage()
        facts["full_numel"] = sum(p.ds_numel for p in params)
        facts["local_numel"] = sum(p.ds_tensor.numel() for p in params)
    else:
        facts["full_numel"] = sum(p.numel() for p in params)
        facts["local_numel"] = sum((p.to_local() if isinstance(p, DTensor) else p).numel() for p in params)
    ref = getattr(trainer, "ref_model", None)
    facts["ref_wrapper"] = None if ref is None else type(ref).__name__
    return facts


def record(out: Path, kill_after) -> None:
    generate = FidelityGRPOTrainer._generate_and_score_completions
    save = FidelityGRPOTrainer._save_checkpoint
    step = FidelityGRPOTrainer.training_step

    def step_then_facts(self, *args, **kwargs):
        loss = step(self, *args, **kwargs)
        # After a backward every engine holds its parameters at rest (resharded / released).
        facts = out / f"engine-rank{self.accelerator.process_index}.json"
        if not facts.exists():
            facts.write_text(json.dumps(engine_facts(self)))
        return loss

    def recorded(self, inputs):
        output = generate(self, inputs)
        rank = self.accelerator.process_index
        rec = self.last_step
        nan_to_none = lambda t: [[None if v != v else v for v in row] for row in t.tolist()]  # noqa: E731
        row = {"step": self.state.global_step + 1, "image_ids": rec.image_ids, "scores": nan_to_none(rec.scores),
               "rewards": nan_to_none(rec.rewards), "advantages": rec.advantages.tolist(),
               "completion_ids": output["completion_ids"].tolist()}
        with open(out / f"steps-rank{rank}.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        return output

    def save_then_die(self, model, trial=None):
        save(self, model, trial)
        if self.state.global_step == kill_after:
            self.accelerator.wait_for_everyone()  # every shard of the checkpoint is on disk
            os.kill(os.getpid(), signal.SIGKILL)

    FidelityGRPOTrainer._generate_and_score_completions = recorded
    FidelityGRPOTrainer._save_checkpoint = save_then_die
    FidelityGRPOTrainer.training_step = step_then_facts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("engine", choices=("ddp", "fsdp2", "zero3"))
    parser.add_argument("model")
    parser.add_argument("labels")
    parser.add_argument("out", type=Path)
    parser.add_argument("--kill-after", type=int, default=None)
    parser.add_argument("--no-shim", action="store_true")
    args = parser.parse_args()
    if args.engine == "fsdp2" and not args.no_shim:
        force_fsdp_on_cpu()
    record(args.out, args.kill_after)
    # DeepSpeed is disabled by accelerate for a `cpu` state, so ZeRO-3 runs with use_cpu off on a CUDA-less host.
    config = make_config(None, dict(
        num_generations=4, images_per_step=4, per_device_train_batch_size=8, max_completion_length=12, max_steps=3,
        save_steps=2, seed=42, learning_rate=1e-4, beta=0.05, gradient_checkpointing=False, bf16=False,
        use_cpu=args.engine != "zero3", attn_implementation="sdpa"))
    train_stage(args.model, args.labels, args.out / "train", config)


if __name__ == "__main__":
    main()
