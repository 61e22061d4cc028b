"""`evoquality train`: stage 2 alone — fidelity-reward GRPO on a finished stage-1 round.

    evoquality train --model DIR --labels ROUND_DIR|labels.jsonl --out DIR [--config train.yaml] [--beta 0.05 ...]
    accelerate launch --config_file CONFIG -m evoquality train ...   (shipped configs: training/configs/README.md)

Every `TrainConfig` field is a flag (defaults < --config file < flags). Re-running the same command resumes from the
newest checkpoint in --out; a finished run (DIR/model present) is not retrained.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evoquality.training.config import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.splitlines()[0]
    parser.add_argument("--model", type=Path, required=True, help="checkpoint directory of the policy")
    parser.add_argument("--labels", type=Path, required=True, help="stage-1 round directory or its labels.jsonl")
    parser.add_argument("--out", type=Path, required=True, help="output directory (checkpoints, metrics, model/)")
    parser.add_argument("--ref-checkpoint", type=Path, default=None,
                        help="checkpoint of the frozen KL reference (default: --model, the round start)")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from evoquality.training.stage import train_stage

    config = config_from_args(args)
    print(train_stage(args.model, args.labels, args.out, config, ref_model=args.ref_checkpoint))
    return 0
