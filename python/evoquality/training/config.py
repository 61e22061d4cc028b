"""Stage-2 training configuration: one dataclass, paper defaults, every field settable from a YAML/JSON file and the
command line (precedence: defaults < file < CLI flags).

The fields are ours (named after docs/method.md); `to_grpo_config` translates them into TRL's `GRPOConfig`, and
`grpo_overrides` passes any other GRPOConfig field straight through for users who know TRL (never one that a field
here decides, nor one our trainer replaces: that is an error).

Where TRL 1.16's defaults differ from the paper, the paper wins and the TRL behaviour stays one field away:
loss_type "grpo" (TRL: "dapo"), beta 0.05 with a reference model (TRL: 0), lr 3e-7 linear, and the plain k3 KL
(`use_bias_correction_kl` off; TRL: on). With vLLM, TRL's importance-sampling correction stays on (a decision,
see `vllm_importance_sampling_correction`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Union, get_args, get_origin, get_type_hints

from evoquality.config_fields import add_dataclass_arguments, option, values_from_args
from evoquality.ops.constants import EPS_ADV, GAMMA, SCALES

LOSS_TYPES = ("grpo", "dapo", "dr_grpo", "bnpo")
SCALE_REWARDS = SCALES
VLLM_IS_MODES = ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask")
VLLM_MODES = ("colocate", "server")
REF_MODES = ("round_start", "initial")
ATTN = ("auto", "flash_attention_2", "sdpa", "eager")
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class TrainConfig:
    # --- the method (docs/method.md, stage 2) ---
    num_generations: int = option(32, "G: sampled score rollouts per image [paper: G = K = 32].")
    images_per_step: int = option(
        8, "Unique images per global generation batch; pairs are kept whole, so it must be even."
    )
    beta: float = option(0.05, "KL coefficient to the frozen reference (k3 estimator) [paper: 0.05]. 0 = no reference.")
    use_bias_correction_kl: bool = option(
        False, "Multiply the k3 KL by the importance ratio pi_theta/pi_old (TRL's default since 1.x, after "
               "DeepSeek-V3.2: an unbiased reverse-KL gradient; it changes the KL gradient even on-policy). "
               "Off = the paper's plain k3 estimator (Eq. 5-6) [paper].")
    epsilon: float = option(0.2, "PPO clip range [decision: 0.2].")
    loss_type: str = option("grpo", "TRL loss normalisation; 'grpo' = per-sequence mean [paper].", choices=LOSS_TYPES)
    learning_rate: float = option(3e-7, "AdamW learning rate [paper: 3e-7].")
    lr_scheduler_type: str = option("linear", "Learning-rate schedule [paper: linear decay].")
    warmup_steps: float = option(0.0, "Linear warm-up: optimizer steps, or a share of all steps when < 1.")
    weight_decay: float = option(0.0, "AdamW weight decay.")
    max_grad_norm: float = option(1.0, "Gradient clipping norm.")
    temperature: float = option(1.0, "Sampling temperature of the rollouts [paper: 1].")
    top_p: float = option(1.0, "Nucleus sampling of the rollouts (1 = off).")
    max_completion_length: int = option(512, "Maximum new tokens per rollout (reasoning + boxed score).")
    gamma: float = option(GAMMA, "Variance floor in the Thurstone denominator [decision, as VisualQuality-R1].")
    train_compare: bool = option(
        False, "Also train the comparison prompt: every labelled pair of a step is asked once more as a comparison "
               "(G sampled answers, reward = agreement with p*: p* for naming image_i, 1 - p* for image_j), so the "
               "voter of the next round improves with the scorer. Off = the paper (GRPO on the scoring prompt only).")
    unparsed_reward: Optional[float] = option(
        None, "Reward of a rollout whose answer gives no score (or no choice): unset = none, so it is left out of its "
              "group's statistics and gets advantage 0 [decision: the paper is silent; never a random score]. A "
              "value in [0, 1] (the fidelity reward's range; 0 = its worst) takes part in the group statistics, so "
              "GRPO also learns to keep the answer format. Only for images with a partner in the step (the others "
              "have no reward at all).")
    adv_eps: float = option(EPS_ADV, "Epsilon of the group z-score of the advantages (TRL's value).")
    scale_rewards: str = option(
        "group", "Advantage scaling: (r - group mean) / (group std + adv_eps) [paper Eq. 4: 'group'], the batch "
                 "std ('batch'), or no division ('none'). Our fidelity advantages implement all three.",
        choices=SCALE_REWARDS)
    # --- batching ---
    per_device_train_batch_size: int = option(8, "Sequences per forward/backward on each process.")
    num_train_epochs: float = option(1.0, "Passes over the labelled pairs (ignored when max_steps > 0).")
    max_steps: int = option(-1, "Optimizer steps; -1 = derive from num_train_epochs.")
    seed: int = option(42, "Seed of the pair sampler, the rollouts and the initialisation of anything random.")
    # --- engines ---
    bf16: Optional[bool] = option(None, "bf16 mixed precision; unset = on when training on CUDA.")
    gradient_checkpointing: bool = option(True, "Recompute activations in backward (saves memory, costs ~30% time).")
    model_dtype: str = option("float32", "dtype the policy is loaded in: float32 master weights with bf16 autocast, or "
                          "bfloat16 to halve memory (pure bf16 training).", choices=DTYPES)
    attn_implementation: str = option("auto", "Attention kernel; auto = flash_attention_2 on CUDA when installed.",
                                  choices=ATTN)
    use_vllm: bool = option(False, "Generate rollouts with vLLM (TRL's integration).")
    vllm_mode: str = option("colocate", "vLLM mode: colocate (same GPUs) or server (`trl vllm-serve`).",
                        choices=VLLM_MODES)
    vllm_server_host: str = option("0.0.0.0", "vLLM server host (server mode).")
    vllm_server_port: int = option(8000, "vLLM server port (server mode).")
    vllm_gpu_memory_utilization: float = option(0.3, "GPU memory share vLLM may take (colocate mode).")
    vllm_importance_sampling_correction: bool = option(
        True, "With use_vllm: reweight each rollout's loss by the ratio of the trainer's to vLLM's sampling "
              "probabilities (TRL's correction for the two engines' numeric mismatch). It costs one more forward "
              "pass per generation batch (the old log-probabilities) and masks or truncates sequences whose ratio "
              "leaves the clip range [decision: TRL's default, on; the paper is silent]. No effect without vLLM.")
    vllm_importance_sampling_mode: str = option(
        "sequence_mask", "How that ratio is applied: per token or per sequence, truncated or masked (TRL's modes).",
        choices=VLLM_IS_MODES)
    vllm_importance_sampling_clip_max: float = option(3.0, "Upper bound of that ratio (TRL's default).")
    use_cpu: bool = option(False, "Train on CPU even where CUDA exists (tests).")
    # --- bookkeeping ---
    logging_steps: int = option(1, "Log metrics every N optimizer steps.")
    save_steps: int = option(50, "Checkpoint every N optimizer steps (resumable).")
    save_total_limit: int = option(2, "Checkpoints kept on disk.")
    report_to: str = option("none", "TRL/transformers loggers: none, tensorboard, wandb (comma separated).")
    log_completions: bool = option(False, "Log sampled completions through TRL.")
    ref_model: str = option(
        "round_start",
        "Reference policy of the KL term in `evolve`: the model at the round start [decision] or the initial model "
        "(the embedded default: initial, docs/toy.md).",
        choices=REF_MODES,
    )
    grpo_overrides: dict = option(help="Extra TRL GRPOConfig fields, passed through unchanged (file only).",
                                  cli=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(msg)

        need(self.num_generations >= 2, f"num_generations must be >= 2 (a group needs spread), got {self.num_generations}")
        need(self.images_per_step >= 2 and self.images_per_step % 2 == 0,
             f"images_per_step must be an even number >= 2 (pairs are kept whole), got {self.images_per_step}")
        need(self.beta >= 0 and math.isfinite(self.beta), f"beta must be finite and >= 0, got {self.beta}")
        need(self.epsilon > 0, f"epsilon must be > 0, got {self.epsilon}")
        need(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        need(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        need(self.max_completion_length >= 1, f"max_completion_length must be >= 1, got {self.max_completion_length}")
        # gamma keeps the Thurstone denominator sqrt(var_i + var_j + gamma) > 0 when both groups agree exactly.
        need(self.gamma > 0 and math.isfinite(self.gamma), f"gamma must be finite and > 0, got {self.gamma}")
        need(self.adv_eps > 0, f"adv_eps must be > 0, got {self.adv_eps}")
        need(self.unparsed_reward is None or 0.0 <= self.unparsed_reward <= 1.0,
             f"unparsed_reward must be unset or in [0, 1] (the fidelity reward's range), got {self.unparsed_reward}")
        need(self.per_device_train_batch_size >= 1,
             f"per_device_train_batch_size must be >= 1, got {self.per_device_train_batch_size}")
        need(self.vllm_importance_sampling_clip_max >= 1,
             f"vllm_importance_sampling_clip_max must be >= 1, got {self.vllm_importance_sampling_clip_max}")
        for name in ("loss_type", "vllm_mode", "ref_model", "attn_implementation", "model_dtype", "scale_rewards",
                     "vllm_importance_sampling_mode"):
            choices = _FIELDS[name].metadata["choices"]
            need(getattr(self, name) in choices, f"{name} must be one of {choices}, got {getattr(self, name)!r}")
        need(isinstance(self.grpo_overrides, dict),
             f"grpo_overrides must be a mapping, got {type(self.grpo_overrides).__name__}")

    # --- batching arithmetic (TRL: generation_batch_size = per_device * processes * steps_per_generation) ---
    def prompts_per_step(self) -> int:
        """Rollout groups per generation batch: one per image, plus one per pair with `train_compare`."""
        return self.images_per_step + (self.images_per_step // 2 if self.train_compare else 0)

    def rollouts_per_step(self) -> int:
        return self.prompts_per_step() * self.num_generations

    def steps_per_generation(self, num_processes: int) -> int:
        """Micro-batches per generation batch on each process; one optimizer step per generation batch keeps GRPO
        on-policy (no old-logprob forward needed)."""
        per_pass = self.per_device_train_batch_size * num_processes
        if self.rollouts_per_step() % per_pass:
            raise ValueError(
                f"rollouts per step ({self.prompts_per_step()} prompts x {self.num_generations} generations = "
                f"{self.rollouts_per_step()}) must be divisible by "
                f"per_device_train_batch_size * num_processes = {per_pass}"
            )
        return self.rollouts_per_step() // per_pass

    def to_grpo_config(self, output_dir: Union[str, Path], *, num_processes: int = 1, cuda: bool = False):
        """The TRL `GRPOConfig` this run needs. `cuda` says whether training runs on a CUDA device (bf16 default)."""
        from trl import GRPOConfig

        spg = self.steps_per_generation(num_processes)
        bf16 = (cuda and not self.use_cpu) if self.bf16 is None else self.bf16
        kwargs: dict[str, Any] = dict(
            output_dir=str(output_dir),
            num_generations=self.num_generations,
            beta=self.beta,
            use_bias_correction_kl=self.use_bias_correction_kl,
            epsilon=self.epsilon,
            loss_type=self.loss_type,
            learning_rate=self.learning_rate,
            lr_scheduler_type=self.lr_scheduler_type,
            warmup_steps=self.warmup_steps,
            weight_decay=self.weight_decay,
            max_grad_norm=self.max_grad_norm,
            temperature=self.temperature,
            top_p=self.top_p,
            max_completion_length=self.max_completion_length,
            per_device_train_batch_size=self.per_device_train_batch_size,
            steps_per_generation=spg,
            gradient_accumulation_steps=spg,
            num_train_epochs=self.num_train_epochs,
            max_steps=self.max_steps,
            seed=self.seed,
            bf16=bf16,
            activation_checkpointing=self.gradient_checkpointing,  # transformers 5 name of gradient checkpointing
            use_vllm=self.use_vllm,
            vllm_mode=self.vllm_mode,
            vllm_server_host=self.vllm_server_host,
            vllm_server_port=self.vllm_server_port,
            vllm_gpu_memory_utilization=self.vllm_gpu_memory_utilization,
            vllm_importance_sampling_correction=self.vllm_importance_sampling_correction,
            vllm_importance_sampling_mode=self.vllm_importance_sampling_mode,
            vllm_importance_sampling_clip_max=self.vllm_importance_sampling_clip_max,
            use_cpu=self.use_cpu,
            logging_steps=self.logging_steps,
            save_steps=self.save_steps,
            save_total_limit=self.save_total_limit,
            report_to=[s for s in self.report_to.split(",") if s] or "none",
            log_completions=self.log_completions,
            # Our dataset carries image ids and paths beside the prompt; TRL must not drop them.
            remove_unused_columns=False,
            # Our advantages replace TRL's inline ones (computed with the same scaling, then discarded).
            scale_rewards=self.scale_rewards,
        )
        unknown = set(self.grpo_overrides) - {f.name for f in dataclasses.fields(GRPOConfig)}
        if unknown:
            raise ValueError(f"grpo_overrides has keys that GRPOConfig does not know: {sorted(unknown)}")
        # A pass-through key must never shadow what this config decides: TRL would honour it while our trainer
        # (advantages, sampler, batching) follows the field, and the run would silently be neither.
        owned = sorted(set(self.grpo_overrides) & (set(kwargs) | set(_FIELDS) | set(_IGNORED_BY_TRAINER)))
        if owned:
            raise ValueError(f"grpo_overrides must not set {owned}: "
                             + "; ".join(_IGNORED_BY_TRAINER.get(k, "set by a TrainConfig field of that (or its "
                                                                   "transformers) name, use the field")
                                         for k in owned))
        kwargs.update(self.grpo_overrides)
        return GRPOConfig(**kwargs)


# GRPOConfig fields that TRL reads but our trainer replaces (why it is an error to pass them through).
_IGNORED_BY_TRAINER = {
    "reward_weights": "reward_weights: the fidelity reward is the only reward",
    "multi_objective_aggregation": "multi_objective_aggregation: the fidelity reward is the only reward",
    "generation_batch_size": "generation_batch_size: derived from images_per_step x num_generations",
}

_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_HINTS = get_type_hints(TrainConfig)


def _coerce(name: str, value: Any) -> Any:
    """Convert a file/CLI value to the field's type; reject what does not fit, naming the key."""
    hint = _HINTS[name]
    if get_origin(hint) is Union:  # Optional[X]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "auto")):
            return None
        hint = next(a for a in get_args(hint) if a is not type(None))
    if hint is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"config key {name!r} must be a mapping, got {value!r}")
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ValueError(f"config key {name!r} must be a boolean, got {value!r}")
    try:
        if hint is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        if hint in (int, float) and isinstance(value, bool):
            raise ValueError
        return hint(value)
    except (TypeError, ValueError):
        raise ValueError(f"config key {name!r} must be {hint.__name__}, got {value!r}") from None


def read_config_file(path: Union[str, Path]) -> dict:
    """Read a YAML (.yaml/.yml) or JSON (.json) mapping of TrainConfig fields."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {str(path)!r} does not exist")
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml  # a dependency of accelerate and transformers; only needed here

        data = yaml.safe_load(text)
    elif path.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        raise ValueError(f"config file must end in .yaml, .yml or .json, got {str(path)!r}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {str(path)!r} must hold a mapping, got {type(data).__name__}")
    return data


def make_config(
    file: Optional[Union[str, Path]] = None,
    overrides: Optional[Mapping[str, Any]] = None,
    base: Optional[Mapping[str, Any]] = None,
) -> TrainConfig:
    """Defaults, then `base` (a preset), then the file's keys, then `overrides` (CLI flags that were given);
    unknown keys are errors."""
    values: dict[str, Any] = {}
    for source in (dict(base or {}), read_config_file(file) if file else {}, dict(overrides or {})):
        unknown = sorted(set(source) - set(_FIELDS))
        if unknown:
            raise ValueError(f"unknown training config keys {unknown}; known: {sorted(_FIELDS)}")
        values.update({k: _coerce(k, v) for k, v in source.items()})
    return TrainConfig(**values)


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """`--config FILE` and one `--flag` per field; unset flags stay None so the file/defaults win."""
    group = parser.add_argument_group("training config (defaults < --config file < these flags)")
    group.add_argument("--config", type=Path, default=None, help="YAML or JSON file of training config keys.")
    add_dataclass_arguments(group, TrainConfig, unset_none=True, strings=True)


def config_from_args(args: argparse.Namespace, base: Optional[Mapping[str, Any]] = None) -> TrainConfig:
    """The config of parsed `add_config_arguments` flags, over an optional preset `base`."""
    return make_config(getattr(args, "config", None), values_from_args(args, TrainConfig), base)


def config_to_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)
