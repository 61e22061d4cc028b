"""Benchmark: the all-pairs win matrix and its pair-list variant — providers `torch` (the sort/rank PyTorch
reference, the CPU path and the anchor) and `triton` (the compiled kernel, CUDA).

    .venv/bin/python benchmarks/bench_win_matrix.py [--images 2000 --samples 32 --pairs 20000] [--device cuda]

Targets: on CPU, N = 2,000 images x K = 32 samples in < 2 s; on one H100, N = 10,000 x K = 32 in <= 50 ms. Scores
are rounded to 2 decimals in [1, 5] (as parsed from the model, so ties are frequent) with 5 % invalid samples. A
spot check of the reference against the definition (brute force on a subset of images) runs before timing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _rows  # noqa: E402

from evoquality import _backend  # noqa: E402
from evoquality.ops.win_matrix import win_matrix  # noqa: E402

PROVIDERS = ("torch", "triton")
ANCHOR = "torch"


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


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--pairs", type=int, default=20000, help="pairs of the pair-list variant (0: all pairs only)")
    _rows.add_kernel_arguments(ap, PROVIDERS, reps=5)
    return ap


def run(argv: list[str] | None = None) -> list[dict]:
    args = build_parser().parse_args(argv)
    providers, explicit = _rows.providers_of(args, PROVIDERS)
    torch.set_num_threads(args.threads)
    n, k, m = args.images, args.samples, args.pairs
    scores = make_scores(n, k)
    sub = torch.arange(0, n, max(1, n // 40))
    with _backend.force_provider("torch"):
        spot = float((win_matrix(scores[sub]).double() - brute_force(scores[sub])).abs().max())
    if not spot < 1e-6:
        raise SystemExit(f"reference disagrees with the definition by {spot:.3g}")
    scores = scores.to(args.device)
    pairs = torch.randint(0, n, (m, 2), generator=torch.Generator().manual_seed(1)).to(args.device)

    def timer(provider, **kw):
        return _rows.provider_timer(lambda: win_matrix(scores, **kw), provider, args, warmup=1)

    common = dict(providers=providers, explicit=explicit, device=args.device, anchor=ANCHOR, unit="pairs/s")
    target = "target < 2 s at N=2000 K=32 (CPU)" if args.device == "cpu" else "target <= 50 ms at N=10000 K=32"
    rows = _rows.compare("win_matrix", f"N={n} K={k}", {p: timer(p) for p in PROVIDERS}, work=n * n,
                         notes={"torch" if args.device == "cpu" else "triton": target}, **common)
    if m:
        rows += _rows.compare("win_matrix(pairs)", f"N={n} K={k} M={m}", {p: timer(p, pairs=pairs) for p in PROVIDERS},
                              work=m, **common)
    _rows.stamp(rows, args.device)
    _rows.save(args.out, "bench_win_matrix", rows)
    return rows


def main(argv=None) -> int:
    return _rows.main_of(run, argv)


if __name__ == "__main__":
    sys.exit(main())
