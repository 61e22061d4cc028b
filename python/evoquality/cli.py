"""`evoquality` command line: one sub-command per module of `evoquality.commands`.

The command modules import the library inside their functions, so `evoquality info` or `--help` does not pay for
TRL. User errors are reported in one place, `commands.report_user_errors`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from evoquality.commands import (
    bench,
    evaluate,
    evolve,
    info,
    label,
    make_tiny_model,
    report_user_errors,
    score,
    train,
)

# (command name, module that implements it, one-line help)
COMMANDS = (
    ("info", info, "print versions and which backends are available"),
    ("make-tiny-model", make_tiny_model, "build a tiny random Qwen2.5-VL checkpoint offline"),
    ("label", label, "stage 1: pairwise majority-vote pseudo-labels for a round"),
    ("train", train, "stage 2: fidelity-reward GRPO on a labelled round"),
    ("evolve", evolve, "the full method: rounds of labelling + GRPO, resumable"),
    ("eval", evaluate, "evaluate a model (and classical yardsticks) on IQA test sets"),
    ("score", score, "print quality scores of images (model or PIQE)"),
    ("bench", bench, "run the benchmarks of a source checkout: rows.csv, rows.json, summary.md"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evoquality", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, _, help_text in COMMANDS:
        # add_help=False: `-h` must reach the command's own parser, which knows its options.
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # First pass finds the command; its module then adds its own arguments and parses again.
    known, _ = parser.parse_known_args(argv)
    if known.command is None:
        parser.print_help()
        return 2
    _, module, help_text = next(c for c in COMMANDS if c[0] == known.command)
    prog = f"evoquality {known.command}"

    def run() -> int:
        cmd_parser = argparse.ArgumentParser(prog=prog, description=help_text)
        module.add_arguments(cmd_parser)  # may fail too: `bench` reads its options from the checkout's suite
        return module.run(cmd_parser.parse_args(argv[1:]))

    return report_user_errors(prog, run)
