"""`evoquality make-tiny-model DIR [--seed S]`: a tiny random Qwen2.5-VL checkpoint, built offline (`tiny_model`)."""

from __future__ import annotations

import argparse

from evoquality.tiny_model import TINY_MAX_PIXELS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", help="directory to write the checkpoint to")
    parser.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    parser.add_argument("--max-pixels", type=int, default=TINY_MAX_PIXELS, help="image processor max_pixels")


def run(args: argparse.Namespace) -> int:
    from evoquality.tiny_model import make_tiny_model

    path = make_tiny_model(args.out_dir, seed=args.seed, max_pixels=args.max_pixels)
    n_files = sum(1 for _ in path.iterdir())
    print(f"tiny Qwen2.5-VL written to {path} ({n_files} files, seed {args.seed})")
    return 0
