"""Benchmark: group advantages on CPU, our reference vs TRL 1.16's inline computation (same semantics).

    .venv/bin/python benchmarks/bench_group_advantage.py [--images 512 --rollouts 32] [--out DIR]

TRL's code (GRPOTrainer._generate_and_score_completions, sum_then_normalize) is reproduced by the test
`tests/ops/test_group_advantage.py::trl_advantages`; both are checked to agree before timing.
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
from evoquality.ops.group_advantage import group_advantages  # noqa: E402


def trl_group_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """TRL 1.16's scale_rewards="group" path on (B, G) rewards (trl/trainer/grpo_trainer.py lines 2765-2787, 2810)."""
    from trl.trainer.utils import nanstd

    g = rewards.shape[1]
    flat = rewards.reshape(-1)
    mean = torch.nanmean(flat.view(-1, g), dim=1).repeat_interleave(g, dim=0)
    std = nanstd(flat.view(-1, g), dim=1).repeat_interleave(g, dim=0)
    return torch.nan_to_num((flat - mean) / (std + 1e-4), nan=0.0).view(-1, g)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--rollouts", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: stable on a shared machine)")
    ap.add_argument("--out", type=Path, default=None, help="directory for group_advantage_cpu.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    gen = torch.Generator().manual_seed(0)
    rewards = torch.rand(args.images, args.rollouts, generator=gen)
    rewards[torch.rand(args.images, args.rollouts, generator=gen) < 0.05] = float("nan")
    with _backend.force_provider("torch"):
        diff = float((group_advantages(rewards) - trl_group_advantages(rewards)).abs().max())
        if not diff < 1e-5:
            raise SystemExit(f"reference and TRL disagree by {diff:.3g}")
        ref = time_fn(lambda: group_advantages(rewards), reps=50)
    trl = time_fn(lambda: trl_group_advantages(rewards), reps=50)
    result = {"bench": "group_advantage_cpu", **environment("cpu"),
              "shape": {"images": args.images, "rollouts": args.rollouts}, "max_abs_diff_vs_trl": diff,
              "reference": ref, "trl_inline": trl, "ratio_p50": trl["p50_s"] / ref["p50_s"]}
    print(f"group advantages B={args.images} G={args.rollouts} on {result['device']} @ {result['commit']}")
    print(f"  reference  p20/p50/p80 {fmt_s(ref['p20_s'])} / {fmt_s(ref['p50_s'])} / {fmt_s(ref['p80_s'])}")
    print(f"  TRL inline p20/p50/p80 {fmt_s(trl['p20_s'])} / {fmt_s(trl['p50_s'])} / {fmt_s(trl['p80_s'])}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "group_advantage_cpu.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
