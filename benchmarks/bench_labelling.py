"""Stage-1 voting throughput: one request per (pair, order) with n samples vs K separate prompts, in one run.

    python benchmarks/bench_labelling.py --out DIR [--model DIR | --config tiny|3b|7b] [--votes 32] [--pairs 4]

Both paths ask for the same votes (K per pair, half in each image order) through `evoquality.sampling`, with the
same number of sequences per `generate` call, the same seeds and a fixed answer length (`min_new_tokens` =
`max_new_tokens`, so a random-weight model cannot end one path early). They differ only in how prompts are formed:

- ``shared``:   2 prompts per pair (one per order), ``n = K/2`` samples each — what the labelling runner does;
- ``separate``: K prompts per pair, ``n = 1`` each — K prefills, the ancestor implementation's way.

Models: ``--model DIR`` (a checkpoint), else ``--config tiny`` (the offline tiny Qwen2.5-VL), or ``3b`` / ``7b``: the
Qwen2.5-VL-3B/7B architecture with random weights and the tiny tokenizer's vocabulary (so the LM head is smaller
than the real one; GPU only). Writes DIR/bench_labelling.json and DIR/bench_labelling.md with device, versions,
commit and p20/p50/p80 over repeats.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Qwen2.5-VL architecture sizes (the published config.json of the 3B and 7B Instruct checkpoints).
ARCH = {
    "3b": dict(text=dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
                         num_key_value_heads=2),
               vision=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=2048)),
    "7b": dict(text=dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                         num_key_value_heads=4),
               vision=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584)),
}


def _versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "evoquality"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def _commit() -> str:
    try:
        root = Path(__file__).resolve().parent.parent
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        dirty = subprocess.run(["git", "diff", "--quiet"], cwd=root).returncode != 0
        return rev.stdout.strip() + (" (dirty)" if dirty else "") if rev.returncode == 0 else "unknown"
    except OSError:
        return "unknown"


def _sized_checkpoint(size: str, workdir: Path, device: str) -> Path:
    """A random-weight Qwen2.5-VL with the `size` architecture, saved with the tiny model's tokenizer/processor."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from evoquality.tiny_model import make_tiny_model

    tiny = make_tiny_model(workdir / "tiny", seed=0)
    cfg = json.loads((tiny / "config.json").read_text())
    text, vision = dict(cfg.get("text_config", {})), dict(cfg["vision_config"])
    text.update(ARCH[size]["text"], head_dim=128, rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]})
    vision.update(ARCH[size]["vision"], fullatt_block_indexes=[7, 15, 23, 31], window_size=112)
    cfg.update(text_config=text, vision_config=vision)
    config = Qwen2_5_VLConfig(**{k: v for k, v in cfg.items() if k not in ("architectures", "transformers_version")})
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration(config).to(torch.bfloat16)
    out = workdir / size
    model.save_pretrained(out)
    for f in tiny.iterdir():
        if not (out / f.name).exists():
            (out / f.name).write_bytes(f.read_bytes())
    return out


def _images(n: int, side: int):
    """Natural photos bundled with scikit-image (no download), resized to side x side."""
    from PIL import Image
    from skimage import data

    names = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field")
    photos = [Image.fromarray(getattr(data, name)()).convert("RGB") for name in names]
    return [photos[k % len(photos)].resize((side, side + 8 * (k // len(photos)))) for k in range(n)]


def _requests(images, pairs, votes, path):
    from evoquality.prompts import compare_messages

    msgs = compare_messages()
    reqs = []
    for i, j in pairs:
        if path == "shared":
            reqs += [(msgs, [images[i], images[j]]), (msgs, [images[j], images[i]])]
        else:
            reqs += [(msgs, [images[i], images[j]] if k % 2 == 0 else [images[j], images[i]]) for k in range(votes)]
    return reqs


def _time_path(policy, reqs, n, batch_size, max_new_tokens, seed):
    import torch

    from evoquality.sampling import sample_completions

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    sample_completions(policy, reqs, n=n, max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--model", help="checkpoint directory (overrides --config)")
    ap.add_argument("--config", default="tiny", choices=("tiny", "3b", "7b"))
    ap.add_argument("--pairs", type=int, default=4, help="pairs per generate call")
    ap.add_argument("--votes", type=int, default=32, help="K votes per pair (even)")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--image-side", type=int, default=448)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--device", default=None)
    args = ap.parse_args(argv)
    if args.votes < 2 or args.votes % 2:
        ap.error("--votes must be an even number >= 2")

    import torch

    from evoquality import _backend
    from evoquality.modeling import load_policy

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if _backend.cuda_available() else "cpu")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            model_dir, model_name = Path(args.model), args.model
        elif args.config == "tiny":
            from evoquality.tiny_model import make_tiny_model

            model_dir, model_name = make_tiny_model(Path(tmp) / "tiny", seed=0), "tiny (random weights)"
        else:
            if device == "cpu":
                ap.error(f"--config {args.config} needs a CUDA device")
            model_dir = _sized_checkpoint(args.config, Path(tmp), device)
            model_name = f"Qwen2.5-VL-{args.config.upper()} architecture, random weights, tiny vocabulary"
        policy = load_policy(model_dir, device=device)
    # Fixed answer length on both paths (see the module docstring).
    policy.model.generation_config.min_new_tokens = args.max_new_tokens

    images = _images(max(2 * args.pairs, 2), args.image_side)
    pairs = [(2 * p, 2 * p + 1) for p in range(args.pairs)]
    half = args.votes // 2
    paths = {
        "shared": (_requests(images, pairs, args.votes, "shared"), half, 2 * args.pairs),
        "separate": (_requests(images, pairs, args.votes, "separate"), 1, args.votes * args.pairs),
    }
    # Warm-up both, then interleave so drift (thermal, other load) hits both paths alike.
    for reqs, n, bs in paths.values():
        _time_path(policy, reqs, n, bs, args.max_new_tokens, seed=0)
    times = {name: [] for name in paths}
    for r in range(args.repeats):
        for name, (reqs, n, bs) in paths.items():
            times[name].append(_time_path(policy, reqs, n, bs, args.max_new_tokens, seed=r))
    votes = args.votes * args.pairs
    rows = {}
    for name, ts in times.items():
        p20, p50, p80 = np.percentile(ts, [20, 50, 80]).tolist()
        rows[name] = {"seconds_p20": p20, "seconds_p50": p50, "seconds_p80": p80, "votes_per_s_p50": votes / p50,
                      "prompts_per_call": len(paths[name][0]), "samples_per_prompt": paths[name][1]}
    speedup = rows["separate"]["seconds_p50"] / rows["shared"]["seconds_p50"]
    result = {
        "benchmark": "labelling votes: one prompt per (pair, order) with n samples vs K separate prompts",
        "device": torch.cuda.get_device_name(0) if device.startswith("cuda") else f"cpu ({platform.processor() or platform.machine()})",
        "torch_threads": torch.get_num_threads(), "versions": _versions(), "commit": _commit(), "model": model_name,
        "pairs": args.pairs, "votes": args.votes, "max_new_tokens": args.max_new_tokens,
        "image_side": args.image_side, "repeats": args.repeats, "paths": rows, "speedup_p50": speedup,
        "target": ">= 3x",
    }
    (out / "bench_labelling.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [f"# Labelling votes/s — {result['device']}, {model_name}", "",
          f"commit {result['commit']}, torch {result['versions']['torch']}, transformers "
          f"{result['versions']['transformers']}, threads {result['torch_threads']}; {args.pairs} pairs x K={args.votes} "
          f"votes, {args.max_new_tokens} new tokens, images {args.image_side}px, {args.repeats} repeats", "",
          "| path | prompts x n | s p20 / p50 / p80 | votes/s (p50) |", "|---|---|---|---|"]
    for name, row in rows.items():
        md.append(f"| {name} | {row['prompts_per_call']} x {row['samples_per_prompt']} | {row['seconds_p20']:.3f} / "
                  f"{row['seconds_p50']:.3f} / {row['seconds_p80']:.3f} | {row['votes_per_s_p50']:.1f} |")
    md += ["", f"speedup (p50): **{speedup:.2f}x** (target >= 3x)"]
    (out / "bench_labelling.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
