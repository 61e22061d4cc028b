"""Benchmark: stage-1 vote tally on CPU, the PyTorch reference vs a per-pair Python loop over the votes.

    .venv/bin/python benchmarks/bench_vote_tally.py [--pairs 20000 --votes 32] [--out DIR]

The paper's round: 20,000 pairs x K = 32 votes. Both paths are checked to give identical counts before timing.
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
from evoquality.ops.vote_tally import vote_tally  # noqa: E402


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


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=20000)
    ap.add_argument("--votes", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: stable on a shared machine)")
    ap.add_argument("--out", type=Path, default=None, help="directory for vote_tally_cpu.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    gen = torch.Generator().manual_seed(0)
    votes = torch.randint(0, 2, (args.pairs, args.votes), generator=gen)
    swapped = torch.rand(args.pairs, args.votes, generator=gen) < 0.5
    valid = torch.rand(args.pairs, args.votes, generator=gen) < 0.95
    lists = (votes.tolist(), swapped.tolist(), valid.tolist())
    with _backend.force_provider("torch"):
        tally = vote_tally(votes, swapped, valid)
        expected = list(zip(tally.wins_i.tolist(), tally.wins_j.tolist(), tally.n_invalid.tolist()))
        if loop_tally(*lists) != expected:
            raise SystemExit("the loop and the reference disagree: fix before timing")
        ref = time_fn(lambda: vote_tally(votes, swapped, valid), reps=20)
    loop = time_fn(lambda: loop_tally(*lists), warmup=1, reps=5)
    result = {"bench": "vote_tally_cpu", **environment("cpu"), "shape": {"pairs": args.pairs, "votes": args.votes},
              "reference": ref, "python_loop": loop, "speedup_p50": loop["p50_s"] / ref["p50_s"]}
    print(f"vote tally M={args.pairs} K={args.votes} on {result['device']} @ {result['commit']}")
    print(f"  reference   p20/p50/p80 {fmt_s(ref['p20_s'])} / {fmt_s(ref['p50_s'])} / {fmt_s(ref['p80_s'])}")
    print(f"  Python loop p20/p50/p80 {fmt_s(loop['p20_s'])} / {fmt_s(loop['p50_s'])} / {fmt_s(loop['p80_s'])}")
    print(f"  speedup (p50) {result['speedup_p50']:.0f}x")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "vote_tally_cpu.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
