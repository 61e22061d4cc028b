"""`python -m evoquality.toy.controls --control oracle|coinflip --out DIR [any evoquality evolve flag]`: the
embedded default with each round's labels replaced by a control's (`toy/controls.py` says which and why)."""

from __future__ import annotations

import argparse

from evoquality.commands import evolve, report_user_errors

PROG = "python -m evoquality.toy.controls"


def main(argv=None) -> int:
    from evoquality.toy.controls import CONTROLS

    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--control", required=True, choices=CONTROLS, help="what replaces each round's labels")
    evolve.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.model is not None or args.images is not None:
        parser.error("controls run on the toy world only (no --model / --images): they read its hidden truth")
    return report_user_errors(PROG, lambda: run(args))


def run(args: argparse.Namespace) -> int:
    from evoquality.toy import datasets
    from evoquality.toy.controls import label_transform
    from evoquality.toy.run import run_default

    settings = evolve.settings_from_args(args)
    datasets.write_pool(args.out)
    run_default(settings, label_transform=label_transform(args.control, args.out, settings.train.seed),
                control=args.control, **evolve.heldout_options(args))
    return 0
