"""`evoquality` command line: one sub-command per module.

Each module in `_COMMANDS` exposes `add_arguments(parser)` and `run(args) -> exit code`; a module is imported
only when its command runs, so `evoquality info` does not pay for TRL.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

# (command name, module that implements it, one-line help)
_COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("info", "evoquality.info", "print versions and which backends are available"),
    ("make-tiny-model", "evoquality.tiny_model", "build a tiny random Qwen2.5-VL checkpoint offline"),
    ("label", "evoquality.labelling.command", "stage 1: pairwise majority-vote pseudo-labels for a round"),
    ("train", "evoquality.training.train_command", "stage 2: fidelity-reward GRPO on a labelled round"),
    ("evolve", "evoquality.training.evolve_command", "the full method: rounds of labelling + GRPO, resumable"),
    ("eval", "evoquality.evaluation.runner", "evaluate a model (and classical yardsticks) on IQA test sets"),
    ("score", "evoquality.evaluation.score_command", "print quality scores of images (model or PIQE)"),
    ("bench", "evoquality.bench_command", "run the benchmarks of a source checkout: rows.csv, rows.json, summary.md"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evoquality", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_text in _COMMANDS:
        # add_help=False: `-h` must reach the command's own parser, which knows its options.
        p = sub.add_parser(name, help=help_text, add_help=False)
        p.set_defaults(_module=module)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # First pass finds the command; its module then adds its own arguments and parses again.
    known, _ = parser.parse_known_args(argv)
    if known.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(known._module)
    help_text = next(h for name, _, h in _COMMANDS if name == known.command)
    cmd_parser = argparse.ArgumentParser(prog=f"evoquality {known.command}", description=help_text)
    module.add_arguments(cmd_parser)
    args = cmd_parser.parse_args(argv[1:])
    return int(module.run(args) or 0)
