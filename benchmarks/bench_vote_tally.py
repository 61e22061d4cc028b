"""Benchmark: the stage-1 vote tally — providers `torch` (the PyTorch reference, the CPU path), `triton` (the
compiled kernel, CUDA) and `loop` (a per-pair Python loop over the votes: the anchor).

    .venv/bin/python benchmarks/bench_vote_tally.py [--pairs 20000 --votes 32] [--device cuda] [--out DIR]

The paper's round: 20,000 pairs x K = 32 votes. The loop and the reference are checked to give identical counts
before timing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _rows  # noqa: E402
from _timing import time_fn  # noqa: E402

from evoquality import _backend  # noqa: E402
from evoquality.ops.vote_tally import vote_tally  # noqa: E402

PROVIDERS = ("torch", "triton", "loop")
ANCHOR = "loop"


def loop_tally(votes: list[list[int]], swapped: list[list[bool]], valid: list[list[bool]]):
    """The plain way: one Python pass per pair (counts for x_i, x_j, invalid)."""
    out = []
    for v_row, s_row, ok_row in zip(votes, swapped, valid):
        wi = wj = bad = 0
        for v, s, ok in zip(v_row, s_row, ok_row):
            if not ok:
                bad += 1
            elif (v == 0) != s:
                wi += 1
            else:
                wj += 1
        out.append((wi, wj, bad))
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=20000)
    ap.add_argument("--votes", type=int, default=32)
    _rows.add_kernel_arguments(ap, PROVIDERS, reps=20)
    return ap


def run(argv: list[str] | None = None) -> list[dict]:
    args = build_parser().parse_args(argv)
    providers, explicit = _rows.providers_of(args, PROVIDERS)
    torch.set_num_threads(args.threads)
    m, k = args.pairs, args.votes
    gen = torch.Generator().manual_seed(0)
    votes = torch.randint(0, 2, (m, k), generator=gen)
    swapped = torch.rand(m, k, generator=gen) < 0.5
    valid = torch.rand(m, k, generator=gen) < 0.95
    lists = (votes.tolist(), swapped.tolist(), valid.tolist())
    votes, swapped, valid = votes.to(args.device), swapped.to(args.device), valid.to(args.device)
    if "loop" in providers:
        with _backend.force_provider("torch"):
            tally = vote_tally(votes, swapped, valid)
        expected = list(zip(tally.wins_i.tolist(), tally.wins_j.tolist(), tally.n_invalid.tolist()))
        if loop_tally(*lists) != expected:
            raise SystemExit("the loop and the reference disagree: fix before timing")

    def timer(provider):
        return _rows.provider_timer(lambda: vote_tally(votes, swapped, valid), provider, args)

    # The loop runs on host lists: a few reps suffice (each is ~10^5 times slower than the reference).
    loop = lambda: time_fn(lambda: loop_tally(*lists), warmup=1, reps=min(args.reps, 5),  # noqa: E731
                           max_seconds=args.max_seconds)
    rows = _rows.compare("vote_tally", f"M={m} K={k}", {"torch": timer("torch"), "triton": timer("triton"),
                                                        "loop": loop},
                         providers=providers, explicit=explicit, device=args.device, anchor=ANCHOR, work=m * k,
                         unit="votes/s")
    _rows.stamp(rows, args.device)
    _rows.save(args.out, "bench_vote_tally", rows)
    return rows


def main(argv=None) -> int:
    return _rows.main_of(run, argv)


if __name__ == "__main__":
    sys.exit(main())
