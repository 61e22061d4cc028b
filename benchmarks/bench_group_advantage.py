"""Benchmark: group advantages — providers `torch` (the PyTorch reference, the CPU path), `triton` (the compiled
kernel, CUDA) and `trl` (TRL 1.16's inline computation, same semantics: the anchor).

    .venv/bin/python benchmarks/bench_group_advantage.py [--images 512 --rollouts 32] [--device cuda] [--out DIR]

TRL's code (GRPOTrainer._generate_and_score_completions, sum_then_normalize) is reproduced by the test
`tests/ops/test_group_advantage.py::trl_advantages`; the reference and TRL are checked to agree before timing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _rows  # noqa: E402

from evoquality import _backend  # noqa: E402
from evoquality.ops.group_advantage import group_advantages  # noqa: E402

PROVIDERS = ("torch", "triton", "trl")
ANCHOR = "trl"


def trl_group_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """TRL 1.16's scale_rewards="group" path on (B, G) rewards (trl/trainer/grpo_trainer.py lines 2765-2787, 2810)."""
    from trl.trainer.utils import nanstd

    g = rewards.shape[1]
    flat = rewards.reshape(-1)
    mean = torch.nanmean(flat.view(-1, g), dim=1).repeat_interleave(g, dim=0)
    std = nanstd(flat.view(-1, g), dim=1).repeat_interleave(g, dim=0)
    return torch.nan_to_num((flat - mean) / (std + 1e-4), nan=0.0).view(-1, g)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--rollouts", type=int, default=32)
    _rows.add_kernel_arguments(ap, PROVIDERS, reps=50)
    return ap


def run(argv: list[str] | None = None) -> list[dict]:
    args = build_parser().parse_args(argv)
    providers, explicit = _rows.providers_of(args, PROVIDERS)
    torch.set_num_threads(args.threads)
    b, g = args.images, args.rollouts
    gen = torch.Generator().manual_seed(0)
    rewards = torch.rand(b, g, generator=gen)
    rewards[torch.rand(b, g, generator=gen) < 0.05] = float("nan")
    rewards = rewards.to(args.device)
    if "trl" in providers:
        with _backend.force_provider("torch"):
            diff = float((group_advantages(rewards) - trl_group_advantages(rewards)).abs().max())
        if not diff < 1e-5:
            raise SystemExit(f"reference and TRL disagree by {diff:.3g}")

    def timer(fn, provider=None):
        return _rows.provider_timer(lambda: fn(rewards), provider, args)

    rows = _rows.compare("group_advantages", f"B={b} G={g}",
                         {"torch": timer(group_advantages, "torch"), "triton": timer(group_advantages, "triton"),
                          "trl": timer(trl_group_advantages)},
                         providers=providers, explicit=explicit, device=args.device, anchor=ANCHOR, work=b * g,
                         unit="advantages/s")
    _rows.stamp(rows, args.device)
    _rows.save(args.out, "bench_group_advantage", rows)
    return rows


def main(argv=None) -> int:
    return _rows.main_of(run, argv)


if __name__ == "__main__":
    sys.exit(main())
