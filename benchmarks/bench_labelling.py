"""Stage-1 voting throughput: one request per (pair, order) with n samples vs K separate prompts, in one run.

    python benchmarks/bench_labelling.py --out DIR [--model DIR | --config tiny|3b|7b] [--votes 32] [--pairs 4]

Both paths ask for the same votes (K per pair, half in each image order) through `evoquality.sampling`, with the
same number of sequences per `generate` call, the same seeds and a fixed answer length (`min_new_tokens` =
`max_new_tokens`, so a random-weight model cannot end one path early). They differ only in how prompts are formed:

- ``shared``:   2 prompts per pair (one per order), ``n = K/2`` samples each — what the labelling runner does;
- ``separate``: K prompts per pair, ``n = 1`` each — K prefills, the ancestor implementation's way.

`sample_completions` prefills each prompt once and repeats its KV cache n times, so ``shared`` runs one prefill per
(pair, order).

Models: ``--model DIR`` (a checkpoint), else ``--config tiny`` (the offline tiny Qwen2.5-VL), or ``3b`` / ``7b``: the
Qwen2.5-VL-3B/7B architecture with random weights and the tiny tokenizer's vocabulary (so the LM head is smaller
than the real one; GPU only). Writes DIR/bench_labelling.json and DIR/bench_labelling.md with device, versions,
commit and p20/p50/p80 over repeats. `run(argv)` returns rows (benchmarks/_rows.py) for providers
`one-prefill-per-order` (``shared``) and `k-prefills` (``separate``, the anchor).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _rows  # noqa: E402

PROVIDERS = ("one-prefill-per-order", "k-prefills")
ANCHOR = "k-prefills"

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


def sized_config(size: str, tiny_dir: Path):
    """Qwen2_5_VLConfig of the `size` architecture on top of the tiny checkpoint's config (its token ids)."""
    from transformers import Qwen2_5_VLConfig

    cfg = json.loads((tiny_dir / "config.json").read_text())
    text, vision = dict(cfg.get("text_config", {})), dict(cfg["vision_config"])
    text.pop("layer_types", None)  # one entry per layer of the tiny model: recomputed for the new depth
    text.update(ARCH[size]["text"], head_dim=128, rope_parameters={**text.get("rope_parameters", {}),
                                                                   "mrope_section": [16, 24, 24]})
    vision.update(ARCH[size]["vision"], fullatt_block_indexes=[7, 15, 23, 31], window_size=112)
    cfg.update(text_config=text, vision_config=vision)
    return Qwen2_5_VLConfig(**{k: v for k, v in cfg.items() if k not in ("architectures", "transformers_version")})


def sized_policy(size: str, workdir: Path, device: str, image_side: int):
    """A random-weight Qwen2.5-VL of the `size` architecture, built in memory on `device` (no save/load: writing
    6-15 GB would dominate the GPU budget), with the tiny tokenizer and an image processor that keeps
    `image_side` px images at full resolution (as a real checkpoint's processor would)."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from evoquality import _backend
    from evoquality.modeling import Policy
    from evoquality.processing import load_processor
    from evoquality.tiny_model import make_tiny_model

    tiny = make_tiny_model(workdir / "tiny", seed=0)
    attn = _backend.choose_attn_implementation("auto", device)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(
            sized_config(size, tiny), dtype=torch.bfloat16, attn_implementation=attn.implementation)
    model.eval()
    processor = load_processor(tiny)
    processor.image_processor.size = {"shortest_edge": 56 * 56, "longest_edge": (image_side + 28) ** 2}
    return Policy(model=model, processor=processor, attn=attn, path=tiny, model_type="qwen2_5_vl")


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


def _report(out: Path, result: dict) -> None:
    """Write DIR/bench_labelling.{json,md} (called after every repeat: a run cut by the suite's time limit still
    leaves its measurements)."""
    (out / "bench_labelling.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [f"# Labelling votes/s — {result['device']}, {result['model']}", "",
          f"commit {result['commit']}, torch {result['versions']['torch']}, transformers "
          f"{result['versions']['transformers']}, threads {result['torch_threads']}; {result['pairs']} pairs x "
          f"K={result['votes']} votes, {result['max_new_tokens']} new tokens, images {result['image_side']}px, "
          f"{result['repeats_done']}/{result['repeats']} repeats", ""]
    if result.get("paths"):
        md += ["| path | prompts x n | s p20 / p50 / p80 | votes/s (p50) |", "|---|---|---|---|"]
        for name, row in result["paths"].items():
            md.append(f"| {name} | {row['prompts_per_call']} x {row['samples_per_prompt']} | "
                      f"{row['seconds_p20']:.3f} / {row['seconds_p50']:.3f} / {row['seconds_p80']:.3f} | "
                      f"{row['votes_per_s_p50']:.1f} |")
        md += ["", f"speedup (p50), shared vs separate — what the runner does: **{result['speedup_p50']:.2f}x** "
                   "(target >= 3x)"]
    if result.get("vllm"):
        md += ["", "vLLM backend (runner end to end): " + json.dumps(result["vllm"])]
    (out / "bench_labelling.md").write_text("\n".join(md) + "\n")


def _vllm_end_to_end(model_dir: Path, workdir: Path, images, votes: int, max_new_tokens: int) -> dict:
    """The labelling runner with the vLLM backend over a few pairs: does it run, and at what votes/s."""
    try:
        import vllm  # noqa: F401
    except ImportError as e:
        return {"status": "skipped", "reason": f"vllm not importable: {e}"}
    from evoquality.labelling.config import LabelConfig
    from evoquality.labelling.dist import Dist
    from evoquality.labelling.runner import run_labelling

    pool = workdir / "vllm_pool"
    pool.mkdir()
    for k, im in enumerate(images):
        im.save(pool / f"im{k}.png")
    cfg = LabelConfig(model=str(model_dir), images=str(pool), out=str(workdir / "vllm_round"), backend="vllm",
                      pairs=min(8, len(images) * (len(images) - 1) // 2), votes=votes, batch_items=8,
                      max_new_tokens=max_new_tokens, progress=False, gpu_memory_utilization=0.5)
    try:
        summary = run_labelling(cfg, dist=Dist(device="cuda"))
    except Exception as e:  # report, do not hide: the suite reads the reason
        return {"status": "failed", "error": f"{type(e).__name__}: {e}"[:2000]}
    keep = ("pairs_labelled", "votes_total", "parse_failure_rate", "tie_rate", "position_bias", "throughput")
    return {"status": "ok", **{k: summary[k] for k in keep}}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--model", help="checkpoint directory (overrides --config)")
    ap.add_argument("--config", default="tiny", choices=("tiny", "3b", "7b"))
    ap.add_argument("--pairs", type=int, default=None, help="pairs per generate call; default: 4 (tiny), 2 (3b/7b)")
    ap.add_argument("--votes", type=int, default=32, help="K votes per pair (even)")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="default: 16 (tiny), 32 (3b/7b)")
    ap.add_argument("--image-side", type=int, default=448)
    ap.add_argument("--repeats", type=int, default=None, help="default: 5 (tiny), 3 (3b/7b)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--vllm", action="store_true",
                    help="also run the labelling runner end to end with the vLLM backend (needs vllm + a GPU; the "
                         "model is --model, or the tiny checkpoint)")
    return ap


def measure(argv=None) -> dict:
    """Time both paths as argv asks (DIR's files rewritten after every repeat); returns what bench_labelling.json
    holds."""
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.votes < 2 or args.votes % 2:
        ap.error("--votes must be an even number >= 2")
    big = args.config != "tiny" and not args.model
    max_new = args.max_new_tokens or (32 if big else 16)
    args.pairs = args.pairs or (2 if big else 4)
    repeats = args.repeats or (3 if big else 5)

    import torch

    from evoquality import _backend
    from evoquality.modeling import load_policy

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if _backend.cuda_available() else "cpu")
    if big and not device.startswith("cuda"):
        ap.error(f"--config {args.config} needs a CUDA device")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.model:
            model_dir, model_name = Path(args.model), args.model
        elif big:
            model_dir = None
            model_name = f"Qwen2.5-VL-{args.config.upper()} architecture, random weights, tiny vocabulary"
        else:
            from evoquality.tiny_model import make_tiny_model

            model_dir, model_name = make_tiny_model(tmp / "tiny", seed=0), "tiny (random weights)"
        policy = sized_policy(args.config, tmp, device, args.image_side) if big else load_policy(model_dir,
                                                                                                   device=device)
        # Fixed answer length on both paths (see the module docstring).
        policy.model.generation_config.min_new_tokens = max_new

        images = _images(max(2 * args.pairs, 2), args.image_side)
        pairs = [(2 * p, 2 * p + 1) for p in range(args.pairs)]
        shared = _requests(images, pairs, args.votes, "shared")
        paths = {
            "shared": (shared, args.votes // 2, 2 * args.pairs),
            "separate": (_requests(images, pairs, args.votes, "separate"), 1, args.votes * args.pairs),
        }
        result = {
            "benchmark": "labelling votes: one prompt per (pair, order) with n samples vs K separate prompts",
            "device": torch.cuda.get_device_name(0) if device.startswith("cuda")
            else f"cpu ({platform.processor() or platform.machine()})",
            "torch_threads": torch.get_num_threads(), "versions": _versions(), "commit": _commit(),
            "model": model_name, "attn_implementation": policy.attn.implementation, "pairs": args.pairs,
            "votes": args.votes, "max_new_tokens": max_new, "image_side": args.image_side, "repeats": repeats,
            "repeats_done": 0, "target": ">= 3x",
        }
        _report(out, result)
        # Warm-up both, then interleave so drift (thermal, other load) hits both paths alike.
        for reqs, n, bs in paths.values():
            _time_path(policy, reqs, n, bs, max_new, seed=0)
        times = {name: [] for name in paths}
        votes = args.votes * args.pairs
        for r in range(repeats):
            for name, (reqs, n, bs) in paths.items():
                times[name].append(_time_path(policy, reqs, n, bs, max_new, seed=r))
            rows = {}
            for name, ts in times.items():
                p20, p50, p80 = np.percentile(ts, [20, 50, 80]).tolist()
                rows[name] = {"seconds_p20": p20, "seconds_p50": p50, "seconds_p80": p80,
                              "votes_per_s_p50": votes / p50, "prompts_per_call": len(paths[name][0]),
                              "samples_per_prompt": paths[name][1], "seconds_all": ts}
            sep = rows["separate"]["seconds_p50"]
            result.update(paths=rows, repeats_done=r + 1, speedup_p50=sep / rows["shared"]["seconds_p50"])
            _report(out, result)
        if args.vllm:
            del policy
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
            result["vllm"] = _vllm_end_to_end(model_dir or (tmp / "tiny"), tmp, images, 8, max_new)
            _report(out, result)
    result["device_type"] = "cuda" if device.startswith("cuda") else "cpu"
    return result


def run(argv: list[str] | None = None) -> list[dict]:
    r = measure(argv)
    if not r.get("paths"):
        raise RuntimeError("bench_labelling timed nothing")
    shape = (f"{r['model']}: {r['pairs']} pairs x K={r['votes']}, {r['max_new_tokens']} new tokens, "
             f"{r['image_side']} px")
    timings = {name: _rows.spread(p["seconds_p20"], p["seconds_p50"], p["seconds_p80"], len(p["seconds_all"]))
               for name, p in r["paths"].items()}
    rows = _rows.side_by_side("labelling_votes", shape, {"one-prefill-per-order": timings["shared"],
                                                         "k-prefills": timings["separate"]},
                              anchor=ANCHOR, work=r["pairs"] * r["votes"], unit="votes/s",
                              notes={"one-prefill-per-order": "2 prompts per pair, n = K/2 samples each; target >= 3x",
                                     "k-prefills": "K prompts per pair, one sample each (the ancestor's way)"})
    return _rows.stamp(rows, r["device_type"])


def main(argv=None) -> int:
    return _rows.main_of(run, argv)


if __name__ == "__main__":
    sys.exit(main())
