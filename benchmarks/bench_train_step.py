"""Benchmark one stage-2 training step (FidelityGRPOTrainer on TRL): where the time goes, tokens/s, non-model share.

    python benchmarks/bench_train_step.py --out DIR [--config 3b|7b|tiny] [--images 16 --rollouts 8
                                          --max-new-tokens 128] [--steps 3] [--image-size 448] [--attn auto]

Runs unattended, no download: the model is a *random-init* Qwen2.5-VL built in code from the published 3B/7B
configuration (bf16, flash-attn when installed else sdpa, on CUDA); on a machine without CUDA it runs the tiny
config on CPU. Random weights never write a parseable score, so every reward is NaN and every advantage 0: the
timings are those of a real step (generation runs to --max-new-tokens, the reference and policy forwards/backward
and the optimizer run in full), not a learning run. The tokenizer is EvoQuality's tiny one (a few hundred tokens,
enough for the prompt); the model keeps the real vocabulary (its extra ids decode to nothing).

Writes DIR/bench_train_step.json and DIR/bench_train_step.md: per-phase seconds (p20/p50/p80 over the timed steps,
after one warm-up step), tokens/s, non-model share, peak memory, device, versions and commit. On one H100 the 3B
default should finish in about 2 minutes (not yet measured); 7b needs ~90 GB (policy, gradients, AdamW state and the KL reference in bf16):
use an H200 or --beta 0. `run(argv)` returns rows (benchmarks/_rows.py): one per phase with its share of the step,
and the non-model time; the one provider is `FidelityGRPOTrainer` (no anchor: the shares are the figure).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _rows  # noqa: E402

PROVIDERS = ("FidelityGRPOTrainer",)
ANCHOR = None

# Transcribed from the published Qwen/Qwen2.5-VL-3B-Instruct and Qwen2.5-VL-7B-Instruct config.json files (text
# decoder with mRoPE sections [16, 24, 24] over head_dim 128; the shared 32-block windowed vision tower with full
# attention in blocks 7, 15, 23, 31). Special-token ids are set from EvoQuality's tokenizer (published: 151643...).
QWEN25_VL = {
    "3b": {
        "text": dict(vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                     num_attention_heads=16, num_key_value_heads=2, max_position_embeddings=128000,
                     rms_norm_eps=1e-6, hidden_act="silu", sliding_window=32768, use_sliding_window=False,
                     rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0,
                                      "mrope_section": [16, 24, 24]}),
        "vision": dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=2048,
                       hidden_act="silu", patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                       window_size=112, fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2, in_channels=3),
        "tie_word_embeddings": True,
    },
    "7b": {
        "text": dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                     num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=128000,
                     rms_norm_eps=1e-6, hidden_act="silu", sliding_window=32768, use_sliding_window=False,
                     rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0,
                                      "mrope_section": [16, 24, 24]}),
        "vision": dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584,
                       hidden_act="silu", patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                       window_size=112, fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2, in_channels=3),
        "tie_word_embeddings": False,
    },
}
DEFAULTS = {"tiny": dict(images=4, rollouts=4, max_new_tokens=16, image_size=56),
            "3b": dict(images=16, rollouts=8, max_new_tokens=128, image_size=448),
            "7b": dict(images=16, rollouts=8, max_new_tokens=128, image_size=448)}
PHASE_KEYS = ("preprocess", "generation", "weight_sync", "reward", "advantage", "logprob_forward",
              "forward_backward", "optimizer", "other", "total")


def real_config(name: str, tokenizer):
    from transformers import Qwen2_5_VLConfig

    from evoquality.tiny_model import SPECIAL_TOKENS

    spec = QWEN25_VL[name]
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = dict(spec["text"], bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                pad_token_id=ids["<|endoftext|>"])
    return Qwen2_5_VLConfig(text_config=text, vision_config=dict(spec["vision"]),
                            image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                            vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
                            tie_word_embeddings=spec["tie_word_embeddings"])


def build_policy(name: str, folder: Path, image_size: int, device: str, attn: str, save: bool):
    """(model, processor, attention choice) of config `name` with random weights (bf16 for the real configs).

    The real configs are built in place on the device (no second copy through disk); `save` also writes them to
    `folder/name`, where TRL loads the frozen KL reference from (it needs a checkpoint path when beta > 0).
    """
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from evoquality import _backend
    from evoquality.modeling import load_policy
    from evoquality.processing import load_processor
    from evoquality.tiny_model import make_tiny_model

    tiny = make_tiny_model(folder / "tiny", seed=0, max_pixels=image_size * image_size)
    if name == "tiny":
        policy = load_policy(tiny, device=device, dtype="float32", attn_implementation=attn)
        return policy.model, policy.processor, policy.attn
    processor = load_processor(tiny)
    choice = _backend.choose_attn_implementation(attn, device)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(
            real_config(name, processor.tokenizer), dtype=torch.bfloat16, attn_implementation=choice.implementation)
    path = folder / name
    if save:
        model.save_pretrained(path)
        processor.save_pretrained(path)
    model.config._name_or_path = str(path)
    return model, processor, choice


def write_pool(folder: Path, n: int, size: int, seed: int = 0) -> list[dict]:
    """`n` random images (size x size) and n/2 labelled pairs with labels of every kind."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        path = folder / f"img{k:03d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return [{"image_i": paths[2 * k], "image_j": paths[2 * k + 1], "p_star": float(rng.choice([0.0, 0.5, 1.0]))}
            for k in range(n // 2)]


def percentiles(values: list[float]) -> dict:
    arr = np.asarray(values, dtype=float)
    return {"p20": float(np.percentile(arr, 20)), "p50": float(np.percentile(arr, 50)),
            "p80": float(np.percentile(arr, 80)), "n": int(arr.size)}


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def measure(args: argparse.Namespace) -> dict:
    import torch
    import transformers
    import trl

    from evoquality import _backend
    from evoquality.training.config import make_config
    from evoquality.training.data import pairs_from_records
    from evoquality.training.timing import NON_MODEL_PHASES
    from evoquality.training.trainer import FidelityGRPOTrainer

    cuda = _backend.cuda_available()
    name = args.config or ("3b" if cuda else "tiny")
    if name != "tiny" and not cuda:
        raise SystemExit(f"--config {name} needs a CUDA device (random {name} weights on CPU would take hours)")
    for key, value in DEFAULTS[name].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.images < 2 or args.images % 2:
        raise SystemExit(f"--images must be an even number >= 2 (pairs), got {args.images}")
    device = "cuda" if cuda else "cpu"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench_train_step_", dir=args.workdir))
    started = time.perf_counter()
    try:
        model, processor, attn = build_policy(name, work, args.image_size, device, args.attn, save=args.beta > 0)
        records = write_pool(work / "pool", args.images, args.image_size)
        setup_s = time.perf_counter() - started
        rollouts = args.images * args.rollouts
        micro = min(args.micro_batch, rollouts)
        config = make_config(None, dict(
            num_generations=args.rollouts, images_per_step=args.images, per_device_train_batch_size=micro,
            max_completion_length=args.max_new_tokens, max_steps=1 + args.steps, beta=args.beta,
            use_cpu=not cuda, bf16=cuda, model_dtype="bfloat16" if cuda else "float32",
            gradient_checkpointing=cuda, attn_implementation=args.attn, logging_steps=1, seed=0,
            grpo_overrides={"save_strategy": "no"},
        ))
        trainer = FidelityGRPOTrainer(model, pairs=pairs_from_records(records), config=config,
                                      args=config.to_grpo_config(work / "trainer", cuda=cuda),
                                      processing_class=processor)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        train_started = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - train_started
        steps = [h for h in trainer.state.log_history if "time/total" in h]
        timed = steps[1:] if len(steps) > 1 else steps  # step 1 pays compilation / allocator warm-up
        token_deltas = np.diff([0.0] + [h["num_tokens"] for h in steps])[-len(timed):]
        phases = {k: percentiles([h[f"time/{k}"] for h in timed]) for k in PHASE_KEYS}
        gen_tokens = [rollouts * h["completions/mean_length"] for h in timed]
        result = {
            "benchmark": "bench_train_step",
            "config": name,
            "images": args.images, "rollouts_per_image": args.rollouts, "rollouts": rollouts,
            "max_new_tokens": args.max_new_tokens, "image_size": args.image_size, "micro_batch": micro,
            "beta": args.beta, "attn_implementation": attn.implementation,
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "steps_timed": len(timed),
            "phases_s": phases,
            "tokens_per_s": percentiles([t / h["time/total"] for t, h in zip(token_deltas, timed)]),
            "generated_tokens_per_s": percentiles([g / h["time/generation"] for g, h in zip(gen_tokens, timed)]),
            "non_model_share": percentiles([h["time/non_model_share"] for h in timed]),
            "non_model_s": percentiles([sum(h[f"time/{k}"] for k in NON_MODEL_PHASES) for h in timed]),
            "parse_failure_rate": float(np.mean([h["fidelity/parse_failure_rate"] for h in timed])),
            "mean_completion_tokens": float(np.mean([h["completions/mean_length"] for h in timed])),
            "setup_s": setup_s, "train_s": train_s,
            "peak_memory_gb": (torch.cuda.max_memory_allocated() / 2**30) if cuda else None,
            "device": torch.cuda.get_device_name(0) if cuda else f"CPU ({platform.processor() or platform.machine()})",
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "transformers": transformers.__version__, "trl": trl.__version__},
            "kernel_provider": _backend.kernel_provider(device),
            "commit": commit(),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (out / "bench_train_step.json").write_text(json.dumps(result, indent=2))
    (out / "bench_train_step.md").write_text(markdown(result))
    return result


def markdown(r: dict) -> str:
    memory = "n/a" if r["peak_memory_gb"] is None else f"{r['peak_memory_gb']:.1f} GB"
    lines = [
        f"# bench_train_step: Qwen2.5-VL {r['config']} (random init), {r['images']} images x "
        f"{r['rollouts_per_image']} rollouts, {r['max_new_tokens']} new tokens",
        "",
        f"device {r['device']}; torch {r['versions']['torch']}, transformers {r['versions']['transformers']}, "
        f"trl {r['versions']['trl']}; commit {r['commit']}; attention {r['attn_implementation']}; "
        f"reward/advantage kernels: {r['kernel_provider']}; {r['parameters'] / 1e6:,.1f} M parameters; "
        f"{r['steps_timed']} timed steps after 1 warm-up; peak memory {memory}",
        "",
        "| phase | p20 s | p50 s | p80 s | share of p50 total |",
        "|---|---|---|---|---|",
    ]
    total = r["phases_s"]["total"]["p50"] or 1.0
    for k, v in r["phases_s"].items():
        lines.append(f"| {k} | {v['p20']:.4f} | {v['p50']:.4f} | {v['p80']:.4f} | {v['p50'] / total:.1%} |")
    lines += [
        "",
        f"- tokens/s (prompt + completion, p50): {r['tokens_per_s']['p50']:.0f}; generated tokens/s (p50): "
        f"{r['generated_tokens_per_s']['p50']:.0f}",
        f"- non-model share (preprocess + reward + advantage + other, p50): {r['non_model_share']['p50']:.2%}",
        f"- parse-failure rate {r['parse_failure_rate']:.0%} (random weights), mean completion "
        f"{r['mean_completion_tokens']:.0f} tokens; setup {r['setup_s']:.0f} s, training {r['train_s']:.0f} s",
        "",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for bench_train_step.json / .md")
    p.add_argument("--config", choices=("tiny", "3b", "7b"), default=None, help="default: 3b on CUDA, else tiny")
    p.add_argument("--images", type=int, default=None, help="unique images per step (even; default 16, tiny 4)")
    p.add_argument("--rollouts", type=int, default=None, help="rollouts per image G (default 8, tiny 4)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="tokens per rollout (default 128, tiny 16)")
    p.add_argument("--image-size", type=int, default=None, help="square image side in px (default 448, tiny 56)")
    p.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    p.add_argument("--micro-batch", type=int, default=16, help="sequences per forward/backward")
    p.add_argument("--beta", type=float, default=0.05, help="KL coefficient (0 drops the reference forward)")
    p.add_argument("--attn", default="auto", choices=("auto", "flash_attention_2", "sdpa", "eager"))
    p.add_argument("--workdir", default=None, help="scratch folder for the saved random checkpoint")
    return p


# What each measured phase holds (evoquality.training.timing.PHASES), in plain words where they differ.
PHASE_NOTES = {
    "preprocess": "preprocessing: image decode + processor + prompt tokenisation",
    "generation": "rollout sampling",
    "weight_sync": "vLLM weight push (0 without vLLM)",
    "reward": "score parsing + fused fidelity reward and group advantages",
    "advantage": "hand-over of the fused advantages to TRL",
    "logprob_forward": "reference/old log-prob forwards (model)",
    "forward_backward": "policy forward + loss + backward",
    "optimizer": "AdamW step",
    "other": "batch slicing, callbacks",
    "total": "step wall time",
}


def rows_of(r: dict) -> list[dict]:
    """One row per phase with its share of the step (p50 / total p50), and the non-model time
    (evoquality.training.timing.NON_MODEL_PHASES) with its share."""
    from evoquality.training.timing import NON_MODEL_PHASES

    def timing(p: dict) -> dict:
        return _rows.spread(p["p20"], p["p50"], p["p80"], p["n"])

    shape = (f"{r['config']}: {r['images']} images x {r['rollouts_per_image']} rollouts, {r['max_new_tokens']} new "
             f"tokens, {r['image_size']} px")
    total = r["phases_s"]["total"]["p50"] or 1.0
    throughput = {"total": (r["tokens_per_s"]["p50"], "tokens/s"),
                  "generation": (r["generated_tokens_per_s"]["p50"], "generated tokens/s")}
    out = []
    for phase, p in r["phases_s"].items():
        tput, unit = throughput.get(phase, (None, None))
        out.append(_rows.row(f"train_step/{phase}", PROVIDERS[0], shape, timing(p), share_of_step=p["p50"] / total,
                             throughput=tput, throughput_unit=unit, note=PHASE_NOTES.get(phase, "")))
    share = r["non_model_share"]
    out.append(_rows.row("train_step/non_model", PROVIDERS[0], shape, timing(r["non_model_s"]),
                         share_of_step=share["p50"],
                         note=f"{' + '.join(NON_MODEL_PHASES)} (the rest runs or updates the model); share "
                              f"p20/p50/p80 {share['p20']:.3f} / {share['p50']:.3f} / {share['p80']:.3f}"))
    return out


def run(argv: list[str] | None = None) -> list[dict]:
    r = measure(build_parser().parse_args(argv))
    return _rows.stamp(rows_of(r), "cuda" if r["peak_memory_gb"] is not None else "cpu")


def main(argv=None) -> int:
    return _rows.main_of(run, argv)


if __name__ == "__main__":
    sys.exit(main())
