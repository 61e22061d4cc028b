"""Stage 2 (docs/method.md): GRPO with the fidelity reward, as a thin subclass of TRL 1.16's `GRPOTrainer`.

TRL keeps what it does well — generation (HF or vLLM), the PPO-clip loss with the KL to the reference, DeepSpeed/FSDP,
checkpoints, logging. We override eight private seams, pinned by `tests/training/test_trl_seams.py`:

- `_get_train_sampler`  -> `PairAwareSampler`: both images of every pair in the same generation batch.
- `_calculate_rewards`  -> parse scores, gather them from every process, run the fidelity kernel over the *global*
                           batch (TRL would call a reward function on each process's slice only), return the gathered
                           (B_global, 1) tensor TRL expects. A failed parse is NaN: no reward, advantage 0.
- `_generate_and_score_completions` -> TRL's, then its inline advantages are replaced by ours (`evoquality.ops`,
                           scaled as `TrainConfig.scale_rewards` says).
- `_load_from_checkpoint` -> skipped when the policy was already loaded from that checkpoint (see `stage.py`).
- `_tokenize_prompts`, `_generate_single_turn`, `_prepare_inputs`, `training_step` -> only timed (`timing.py`).

With `TrainConfig.train_compare` the generation batch also holds one comparison prompt per labelled pair; its G
answers are rewarded by their agreement with p* (`compare_rewards`) and z-scored within their own group.

The loss is the paper's (Eq. 5-6): PPO-clip with the plain k3 KL estimator, beta 0.05, per-sequence mean
(loss_type "grpo"), lr 3e-7 linear. TRL 1.16 defaults to other choices (loss "dapo", beta 0, and a KL multiplied by
the importance ratio, `use_bias_correction_kl`); `config.py` sets the paper's and exposes TRL's as options. One
optimizer step per generation batch, so no old-logprob forward (except under vLLM's importance-sampling correction).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from trl import GRPOTrainer
from trl.trainer.grpo_trainer import gather_object

from evoquality.io.preprocess_cache import CachedImageProcessor
from evoquality.ops.fidelity import fidelity_advantages
from evoquality.ops.group_advantage import group_advantages
from evoquality.ops.partners import Partners
from evoquality.prompts import parse_choice, parse_score
from evoquality.training.config import TrainConfig
from evoquality.training.data import ImageStore, LabelledPairs, build_dataset
from evoquality.training.sampler import PairAwareSampler
from evoquality.training.timing import PhaseTimer

SCORE_QUANTILES = (0.1, 0.5, 0.9)
# The figures the console shows after each log (metrics.jsonl and --report-to trackers get every logged value).
CONSOLE_FIGURES = (("fidelity/reward_mean", "reward"), ("fidelity/parse_failure_rate", "parse fail"), ("kl", "KL"))


def fidelity(*args, **kwargs):
    """TRL's reward-function slot (its name labels TRL's `rewards/fidelity/*` metrics). Never called: the fidelity
    reward needs the whole global batch, so `FidelityGRPOTrainer._calculate_rewards` computes it."""
    raise RuntimeError("the fidelity reward is computed over the global batch by FidelityGRPOTrainer, not per slice")


def compare_rewards(choices: torch.Tensor, swapped: torch.Tensor, p_star: torch.Tensor) -> torch.Tensor:
    """Agreement of sampled comparison answers with the pseudo-labels: (C, G) rewards in [0, 1].

    choices (C, G): index of the image the answer names better, in the order shown (0 / 1; NaN = no answer);
    swapped (C,) bool: the pair was shown as (image_j, image_i); p_star (C,): P(image_i better).
    Naming image_i earns p*, naming image_j earns 1 - p* (the expected agreement with the label); a tie (p* = 0.5)
    rewards every answer alike, so it teaches nothing; an answer that does not parse gets NaN (no reward).
    """
    named_i = (choices == 0) != swapped[:, None]
    p = p_star[:, None].to(torch.float32)
    rewards = torch.where(named_i, p, 1.0 - p)
    return torch.where(torch.isnan(choices), torch.full_like(rewards, math.nan), rewards)


def reward_unparsed(values: torch.Tensor, rewards: torch.Tensor, rewarded: torch.Tensor, reward: float, *,
                    scale: str, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """`TrainConfig.unparsed_reward`: rollouts whose answer did not parse (values NaN) in groups that can be rewarded
    (rewarded (U,) bool: an image with a partner in the step, or a comparison group) get `reward`; the advantages are
    recomputed over the filled rewards (the group statistics then include them). values, rewards (U, G)."""
    fill = torch.isnan(values) & rewarded[:, None]
    rewards = torch.where(fill, torch.full_like(rewards, reward), rewards)
    return rewards, group_advantages(rewards, scale=scale, eps=eps)


@dataclass
class CompareRecord:
    """The comparison groups of a generation batch: pairs (C,) indices into LabelledPairs; choices (C, G) (NaN = no
    answer); swapped (C,) bool; rewards and advantages (C, G)."""

    pairs: list[int]
    choices: torch.Tensor
    swapped: torch.Tensor
    rewards: torch.Tensor
    advantages: torch.Tensor


@dataclass
class StepRecord:
    """What the last generation batch used, over the global batch (for logs and tests).

    image_ids (U,); scores (U, G) float32, NaN = parse failure; partners: CSR over the U images;
    rewards (U, G) float32 (NaN = no reward); advantages (U, G) float32 — the scoring groups.
    all_advantages (groups, G): every group of the batch in its order (scoring and comparison groups).
    compare: the comparison groups (`TrainConfig.train_compare`), or None.
    """

    image_ids: list[str]
    scores: torch.Tensor
    partners: Partners
    rewards: torch.Tensor
    advantages: torch.Tensor
    all_advantages: torch.Tensor
    compare: Optional[CompareRecord] = None


def completion_text(completion) -> str:
    """The text of one TRL completion (conversational: a list with one assistant message; or a plain string)."""
    if isinstance(completion, str):
        return completion
    content = completion[-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


class _StepTimingCallback(TrainerCallback):
    """Times the optimizer step and publishes the step's phase breakdown before TRL logs it."""

    def __init__(self, trainer: "FidelityGRPOTrainer") -> None:
        self.trainer = trainer

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.trainer.timer.start("optimizer")

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.trainer.timer.stop("optimizer")
        self.trainer._publish_timings()


class MetricsJsonlCallback(TrainerCallback):
    """Appends every log entry (step metrics, time breakdown) as one JSON line (main process only)."""

    def __init__(self, path: Union[str, Path]) -> None:
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": state.global_step, **logs}, default=float) + "\n")


class ConsoleProgressCallback(ProgressCallback):
    """transformers' progress bar with CONSOLE_FIGURES as its postfix, in place of the whole log dict that
    `ProgressCallback` (or, with `disable_tqdm`, `PrinterCallback`) prints every `logging_steps`. With `disable_tqdm`
    the bar is off and the figures are printed as one short line per log."""

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:  # ProgressCallback's bar, which may be off
            self.training_bar = tqdm(total=state.max_steps, dynamic_ncols=True, disable=args.disable_tqdm)
        self.current_step = 0

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or self.training_bar is None or not logs:
            return
        if not any(key in logs for key, _ in CONSOLE_FIGURES):
            return  # e.g. the run's closing summary
        # A figure absent from this entry (no answer parsed: no reward) shows as "—", not as the last value.
        shown = {label: "—" if logs.get(key) is None else f"{logs[key]:.3g}" for key, label in CONSOLE_FIGURES}
        if args.disable_tqdm:
            print(f"step {state.global_step}/{state.max_steps}: " + ", ".join(f"{k} {v}" for k, v in shown.items()))
        else:
            self.training_bar.set_postfix(shown)


class FidelityGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose reward is the fidelity reward over pair-aware global batches.

    Args:
        model: a loaded `PreTrainedModel` (e.g. `evoquality.modeling.load_policy(...).model`) or a checkpoint path.
        pairs: the stage-1 labelled pairs (`data.pairs_from_records`).
        config: our `TrainConfig`; args: the matching `GRPOConfig` (`config.to_grpo_config(...)`).
        processing_class: the checkpoint's processor (`evoquality.processing.load_processor`).
        ref_model_path: checkpoint of the frozen reference (beta > 0); default = the policy's own checkpoint.
        cache_preprocessing: preprocess each unique image once per generation batch (`io.preprocess_cache`); the
            dataset rows then carry image paths (`data.build_dataset`), except under vLLM, which needs decoded images.
        image_loader: replaces the image pipeline's loader (tests): path -> an image the processor takes.
        weights_loaded_from: the checkpoint `model` was loaded from when resuming (its weights are not reloaded).
    """

    def __init__(
        self,
        model,
        *,
        pairs: LabelledPairs,
        config: TrainConfig,
        args,
        processing_class,
        ref_model_path: Optional[Union[str, Path]] = None,
        cache_preprocessing: bool = True,
        image_loader=None,
        callbacks=None,
        weights_loaded_from: Optional[Union[str, Path]] = None,
    ) -> None:
        if len(pairs) == 0:
            raise ValueError("pairs holds no labelled pair to train on")
        if args.num_generations != config.num_generations:
            raise ValueError("args.num_generations must equal config.num_generations (build args with to_grpo_config)")
        self.pairs = pairs
        self.config = config
        self.weights_loaded_from = None if weights_loaded_from is None else Path(weights_loaded_from).resolve()
        self.timer = PhaseTimer()
        loader = {} if image_loader is None else {"loader": image_loader}
        self.image_store = None
        if args.use_vllm or not cache_preprocessing:
            # Rows carry decoded images: TRL hands them to vLLM as they are (or to a processor without the cache).
            # Two generation batches of unique images: the data loader may prefetch the next batch.
            self.image_store = ImageStore(capacity=2 * config.images_per_step, **loader)
        self.last_step: Optional[StepRecord] = None
        self.pair_sampler: Optional[PairAwareSampler] = None
        # TRL pads prompts on the left and relies on the processor doing the same for the per-token multimodal
        # fields (mm_token_type_ids); prompts differ in length because images differ in size.
        processing_class.tokenizer.padding_side = "left"
        self._cached_processor = None
        if cache_preprocessing:
            self._cached_processor = CachedImageProcessor(processing_class.image_processor, timer=self.timer, **loader)
            processing_class.image_processor = self._cached_processor

        dataset = build_dataset(pairs, self.image_store, compare=config.train_compare, seed=config.seed)
        restore_name = None
        if ref_model_path is not None and args.beta > 0:
            if isinstance(model, (str, Path)):
                raise ValueError("ref_model_path needs `model` as a loaded model, not a path")
            # TRL builds the reference from the policy's `config._name_or_path`; point it at the reference checkpoint
            # for the duration of __init__ (the only place TRL reads it for that purpose).
            restore_name = model.config._name_or_path
            model.config._name_or_path = str(ref_model_path)
        try:
            super().__init__(
                model=str(model) if isinstance(model, Path) else model,
                reward_funcs=[fidelity],
                args=args,
                train_dataset=dataset,
                processing_class=processing_class,
                callbacks=callbacks,
            )
        finally:
            if restore_name is not None:
                model.config._name_or_path = restore_name
        if self.accelerator.device.type == "cuda":
            self.timer._sync = torch.cuda.synchronize
        self.add_callback(_StepTimingCallback(self))
        self.add_callback(MetricsJsonlCallback(Path(args.output_dir) / "metrics.jsonl"))
        # Exact types: a notebook's progress callback (a table, not a dict) is left alone.
        printers = [cb for cb in self.callback_handler.callbacks if type(cb) in (ProgressCallback, PrinterCallback)]
        for cb in printers:
            self.remove_callback(cb)
        if printers:
            self.add_callback(ConsoleProgressCallback())
        if self.use_vllm:
            sync = self.vllm_generation.sync_weights

            def timed_sync(*a, **k):
                with self.timer.phase("weight_sync"):
                    return sync(*a, **k)

            self.vllm_generation.sync_weights = timed_sync

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        # The policy was already loaded from this checkpoint with key conversion (see stage.py); Trainer's own
        # loader would match no key of a Qwen2.5-VL checkpoint and warn about every tensor.
        if self.weights_loaded_from is not None and Path(resume_from_checkpoint).resolve() == self.weights_loaded_from:
            return
        super()._load_from_checkpoint(resume_from_checkpoint, model)

    # ----------------------------------------------------------------------------------------- batching
    def _get_train_sampler(self, dataset=None):
        # Kept for the run summary: every pass's count of pairs that could not be packed (`sampler.passes`).
        n, m = len(self.pairs.images), len(self.pairs)
        self.pair_sampler = PairAwareSampler(
            self.pairs.pairs,
            images_per_batch=self.config.images_per_step,
            compare_rows=np.arange(n, n + m) if self.config.train_compare else None,
            num_generations=self.num_generations,
            repeat_count=self.num_iterations * self.args.steps_per_generation,
            shuffle=self.shuffle_dataset,
            seed=self.args.seed,
        )
        return self.pair_sampler

    # ----------------------------------------------------------------------------------------- timed seams
    def _tokenize_prompts(self, prompts: list):
        with self.timer.phase("preprocess"):
            return super()._tokenize_prompts(prompts)

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        with self.timer.phase("generation"):
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations, has_tool_images)

    def _prepare_inputs(self, generation_batch):
        with self.timer.phase("other"):
            return super()._prepare_inputs(generation_batch)

    def training_step(self, model, inputs, num_items_in_batch):
        with self.timer.phase("forward_backward"):
            return super().training_step(model, inputs, num_items_in_batch)

    def _publish_timings(self) -> None:
        if self.image_store is not None:  # decodes in the data loader; path rows are decoded in `preprocess` itself
            self.timer.add("preprocess", self.image_store.take_seconds())
        for name, value in self.timer.take().items():
            self._metrics["train"][f"time/{name}"].append(value)

    # ----------------------------------------------------------------------------------------- reward
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        with self.timer.phase("reward"):
            device = self.accelerator.device
            # Per rollout one number: the score of a scoring answer, or the image a comparison answer names (pair >= 0).
            rows = [x.get("pair", -1) for x in inputs]
            parsed = [parse_score(completion_text(c)) if k < 0 else parse_choice(completion_text(c))
                      for c, k in zip(completions, rows)]
            local = torch.tensor([math.nan if v is None else v for v in parsed], dtype=torch.float32, device=device)
            values = self.accelerator.gather(local)  # (B_global,) in process order, as TRL gathers rewards
            ids = gather_object([x["image_id"] for x in inputs])
            g = self.num_generations
            if values.numel() != len(ids) or len(ids) % g:
                raise RuntimeError(f"global batch of {len(ids)} rollouts is not a whole number of groups of {g}")
            groups = [ids[k : k + g] for k in range(0, len(ids), g)]
            if any(len(set(group)) != 1 for group in groups):
                raise RuntimeError("a rollout group mixes images: the pair-aware sampler's layout was not preserved")
            group_pair = gather_object(rows)[::g]
            values = values.view(len(groups), g)
            rewards = torch.full_like(values, math.nan)
            advantages = torch.zeros_like(values)

            score_rows = [k for k, p in enumerate(group_pair) if p < 0]
            image_ids = [groups[k][0] for k in score_rows]
            pair_list, labels = self.pairs.pairs_among(image_ids)
            partners = Partners.from_pairs(
                torch.tensor(pair_list, dtype=torch.int64).reshape(-1, 2),
                torch.tensor(labels, dtype=torch.float32),
                len(image_ids),
            ).to(device)
            scores = values[score_rows]
            scale, eps, unparsed = self.config.scale_rewards, self.config.adv_eps, self.config.unparsed_reward
            result = fidelity_advantages(scores, partners, gamma=self.config.gamma, scale=scale, eps=eps)
            score_rewards, score_advantages = result.rewards, result.advantages
            if unparsed is not None:
                has_partner = partners.indptr[1:] > partners.indptr[:-1]
                score_rewards, score_advantages = reward_unparsed(scores, score_rewards, has_partner, unparsed,
                                                                  scale=scale, eps=eps)
            rewards[score_rows], advantages[score_rows] = score_rewards, score_advantages

            compare = None
            compare_rows = [k for k, p in enumerate(group_pair) if p >= 0]
            if compare_rows:
                pairs = [group_pair[k] for k in compare_rows]
                swapped = torch.tensor(gather_object([bool(x.get("swapped", False)) for x in inputs])[::g],
                                       device=device)[compare_rows]
                p_star = torch.as_tensor(self.pairs.p_star[pairs], device=device)
                choices = values[compare_rows]
                c_rewards = compare_rewards(choices, swapped, p_star)
                if unparsed is not None:
                    c_rewards, c_adv = reward_unparsed(choices, c_rewards, torch.ones_like(swapped), unparsed,
                                                       scale=scale, eps=eps)
                else:
                    c_adv = group_advantages(c_rewards, scale=scale, eps=eps)
                rewards[compare_rows], advantages[compare_rows] = c_rewards, c_adv
                compare = CompareRecord(pairs, choices, swapped, c_rewards, c_adv)
        self.last_step = StepRecord(image_ids, scores, partners, score_rewards, score_advantages, advantages, compare)
        return rewards.reshape(-1, 1).to(torch.float32)

    # ----------------------------------------------------------------------------------------- advantages, metrics
    def _generate_and_score_completions(self, inputs):
        if self._cached_processor is not None:
            self._cached_processor.clear()
        with self.timer.phase("logprob_forward"):
            output = super()._generate_and_score_completions(inputs)
        with self.timer.phase("advantage"):
            record = self.last_step
            # Ours replace TRL's inline advantages (the fused kernel computed them with the rewards).
            flat = record.all_advantages.reshape(-1).to(output["advantages"].dtype)
            n_local = len(inputs)
            start = self.accelerator.process_index * n_local
            output["advantages"] = flat[start : start + n_local].to(output["advantages"].device)
            logged = self._logs["advantages"]
            for _ in range(min(flat.numel(), len(logged))):
                logged.pop()
            logged.extend(flat.tolist())
        self._log_step_metrics(record)
        return output

    def _log_step_metrics(self, record: StepRecord) -> None:
        m = self._metrics["train" if self.model.training else "eval"]
        scores, rewards, adv = record.scores.float(), record.rewards.float(), record.advantages.float()
        valid = torch.isfinite(scores)
        m["fidelity/parse_failure_rate"].append(1.0 - valid.float().mean().item())
        has_reward = torch.isfinite(rewards)
        m["fidelity/rewarded_share"].append(has_reward.float().mean().item())
        if has_reward.any():
            r = rewards[has_reward]
            m["fidelity/reward_mean"].append(r.mean().item())
            m["fidelity/reward_std"].append(r.std().item() if r.numel() > 1 else 0.0)
        # A group teaches nothing when its rewards do not vary (or fewer than 2 exist): all advantages 0.
        m["fidelity/zero_variance_groups"].append((adv.abs().amax(dim=1) == 0).float().mean().item())
        m["fidelity/abs_advantage_mean"].append(adv.abs().mean().item())
        m["fidelity/pairs_in_batch"].append(float(record.partners.indices.numel() // 2))
        if valid.any():
            s = scores[valid]
            m["score/mean"].append(s.mean().item())
            m["score/std"].append(s.std().item() if s.numel() > 1 else 0.0)
            m["score/min"].append(s.min().item())
            m["score/max"].append(s.max().item())
            for q, v in zip(SCORE_QUANTILES, torch.quantile(s, torch.tensor(SCORE_QUANTILES, device=s.device))):
                m[f"score/p{int(q * 100)}"].append(v.item())
        if record.compare is not None:
            c = record.compare
            answered = torch.isfinite(c.choices)
            m["compare/parse_failure_rate"].append(1.0 - answered.float().mean().item())
            if answered.any():
                m["compare/agreement"].append(c.rewards[answered].mean().item())  # mean reward: agreement with p*
                m["compare/first_shown_share"].append((c.choices[answered] == 0).float().mean().item())
