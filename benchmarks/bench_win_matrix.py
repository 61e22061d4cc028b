"""Benchmark: all-pairs win matrix on CPU (the sort/rank PyTorch reference), and the pair-list variant.

    .venv/bin/python benchmarks/bench_win_matrix.py [--images 2000 --samples 32 --pairs 20000] [--out DIR]

Target on CPU: N = 2,000 images x K = 32 samples in < 2 s. Scores are rounded to 2 decimals in [1, 5]
(as parsed from the model, so ties are frequent) with 5 % invalid samples. A spot check against the definition
(brute force on a subset of images) runs before timing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import environment, fmt_s, time_fn  # noqa: E402

from evoquality import _backend  # noqa: E402
from evoquality.ops.win_matrix import win_matrix  # noqa: E402


def make_scores(n: int, k: int, *, device="cpu", seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    scores = torch.round((1 + 4 * torch.rand(n, k, generator=gen)) * 100) / 100
    scores[torch.rand(n, k, generator=gen) < 0.05] = float("nan")
    return scores.to(device)


def brute_force(scores: torch.Tensor) -> torch.Tensor:
    """The definition on (n, n, K, K): for spot checks on a few images only."""
    s = scores.double()
    ok = torch.isfinite(s)
    a, b = s[:, None, :, None], s[None, :, None, :]
    h = ((a > b).double() + 0.5 * (a == b).double()) * (ok[:, None, :, None] & ok[None, :, None, :])
    n = ok.sum(1).double()
    return h.sum((2, 3)) / (n[:, None] * n[None, :])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--pairs", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1: stable on a shared machine, and the loop is serial anyway)")
    ap.add_argument("--out", type=Path, default=None, help="directory for win_matrix_cpu.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    scores = make_scores(args.images, args.samples)
    pairs = torch.randint(0, args.images, (args.pairs, 2), generator=torch.Generator().manual_seed(1))
    with _backend.force_provider("torch"):
        full = win_matrix(scores)
        sub = torch.arange(0, args.images, max(1, args.images // 40))
        spot = float((full[sub][:, sub].double() - brute_force(scores[sub])).abs().max())
        if not spot < 1e-6:
            raise SystemExit(f"reference disagrees with the definition by {spot:.3g}")
        t_all = time_fn(lambda: win_matrix(scores), warmup=1, reps=args.reps)
        t_pairs = time_fn(lambda: win_matrix(scores, pairs=pairs), warmup=1, reps=args.reps)
    result = {
        "bench": "win_matrix_cpu", **environment("cpu"),
        "shape": {"images": args.images, "samples": args.samples, "pairs": args.pairs},
        "spot_check_max_abs_diff": spot, "all_pairs": t_all, "pair_list": t_pairs, "target_all_pairs_s": 2.0,
    }
    print(f"win matrix N={args.images} K={args.samples} on {result['device']} @ {result['commit']}")
    print(f"  all pairs  p20/p50/p80 {fmt_s(t_all['p20_s'])} / {fmt_s(t_all['p50_s'])} / {fmt_s(t_all['p80_s'])}"
          f" (target < 2 s)")
    print(f"  {args.pairs} pairs p20/p50/p80 {fmt_s(t_pairs['p20_s'])} / {fmt_s(t_pairs['p50_s'])} / "
          f"{fmt_s(t_pairs['p80_s'])}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "win_matrix_cpu.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
