"""`evoquality evolve`: the whole method — T rounds of (stage 1 labelling -> stage 2 GRPO), resumable.

    evoquality evolve                                   # embedded default: the toy base model on the toy pool,
                                                        # with a held-out report per round (./evoquality-run)
    evoquality evolve --model DIR --images DIR|MANIFEST --rounds 2 --out DIR [--config train.yaml]
                      [--label-config label.yaml] [--label-pairs 20000 --label-votes 32 ...]
                      [--round2-variants 10 --round2-same-content-pairs 5000]
    accelerate launch --config_file CONFIG -m evoquality evolve ...        (both stages shard over the processes)

Stage-2 options are the `evoquality train` flags; stage-1 options are the `evoquality label` flags with a
`--label-` prefix (model, images, out and seed are set per round: round t uses seed + t). Re-running the same
command resumes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evoquality.training.config import add_config_arguments, config_from_args, read_config_file

_PER_ROUND = ("model", "images", "out", "seed", "variants", "variant_pairs")  # set per round by evolve
# EvolveSettings' fields with flags of their own: the run's model, images and out default to the toy world here
# (the fields have no default), and train / label are whole configs whose fields are flags themselves.
_NOT_ROUND_FLAGS = ("out", "model", "images", "train", "label")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from evoquality.config_fields import add_dataclass_arguments
    from evoquality.labelling.config import LabelConfig
    from evoquality.training.rounds import EvolveSettings

    parser.description = __doc__.splitlines()[0]
    parser.add_argument("--model", type=str, default=None,
                        help="starting checkpoint (a base VLM, or a supervised IQA model to stack on); "
                             "default: the embedded toy base model (evoquality.toy)")
    parser.add_argument("--images", type=str, default=None,
                        help="unlabelled image pool: folder or manifest; default: the toy pool (graded blur and "
                             "noise of bundled photos), evaluated on the toy held-out benchmark after every round")
    parser.add_argument("--out", type=str, default="evoquality-run", help="run directory (resumed when it exists)")
    parser.add_argument("--heldout-samples", type=int, default=None,
                        help="embedded default only: sampled answers per held-out image in the report [decision: "
                             "32; 8 saves ~40 s per two-round run and moves a checkpoint's SRCC by +-0.03, docs/toy.md]")
    # --rounds, --round2-variants, --round2-same-content-pairs: unset they stay None, so that the embedded default's
    # preset (toy.run.TOY_ROUND_DEFAULTS) applies under them and EvolveSettings' own defaults otherwise.
    add_dataclass_arguments(parser, EvolveSettings, exclude=_NOT_ROUND_FLAGS, unset_none=True)
    parser.add_argument("--label-config", type=Path, default=None, help="YAML/JSON file of stage-1 options")
    group = parser.add_argument_group("stage 1 (labelling) options; see `evoquality label --help`")
    add_dataclass_arguments(group, LabelConfig, prefix="label-", dest_prefix="label_", exclude=_PER_ROUND,
                            unset_none=True)
    add_config_arguments(parser)


def settings_from_args(args: argparse.Namespace):
    """EvolveSettings from the flags. Without --model the toy base model and the toy presets (under any config file
    and flag) are used; without --images the toy pool, whose manifest is written into the run directory."""
    from evoquality.config_fields import cli_fields, values_from_args
    from evoquality.labelling.config import LabelConfig
    from evoquality.toy.base_model import SHIPPED
    from evoquality.toy.datasets import pool_manifest
    from evoquality.toy.run import TOY_LABEL_DEFAULTS, TOY_ROUND_DEFAULTS, TOY_TRAIN_DEFAULTS
    from evoquality.training.rounds import EvolveSettings

    label_names = {f.name for f in cli_fields(LabelConfig, exclude=_PER_ROUND)}
    label = dict(TOY_LABEL_DEFAULTS) if args.model is None else {}
    if args.label_config:
        file_values = read_config_file(args.label_config)
        unknown = sorted(set(file_values) - label_names)
        if unknown:
            raise ValueError(f"label config keys {unknown} are not stage-1 options (or are set per round)")
        label.update(file_values)
    label.update(values_from_args(args, LabelConfig, dest_prefix="label_", exclude=_PER_ROUND))
    train = config_from_args(args, base=TOY_TRAIN_DEFAULTS if args.model is None else None)
    model = args.model if args.model is not None else str(SHIPPED)
    images = args.images if args.images is not None else str(pool_manifest(args.out))
    given = values_from_args(args, EvolveSettings, exclude=_NOT_ROUND_FLAGS)
    rounds = {**TOY_ROUND_DEFAULTS, **given} if args.model is None else given
    return EvolveSettings(out=args.out, model=model, images=images, train=train, label=label, **rounds)


def heldout_options(args: argparse.Namespace) -> dict:
    """run_default's report options given on the command line (unset: the report's own defaults)."""
    return {} if args.heldout_samples is None else {"heldout_samples": args.heldout_samples}


def run(args: argparse.Namespace) -> int:
    from evoquality.training.rounds import evolve

    settings = settings_from_args(args)
    if args.images is None:  # the embedded default world: write the pool, evolve, report every round
        from evoquality.toy.datasets import write_pool
        from evoquality.toy.run import run_default

        write_pool(args.out)
        final = run_default(settings, **heldout_options(args))
    else:
        if args.heldout_samples is not None:
            raise ValueError("--heldout-samples sets the embedded default's report: it has no effect with --images")
        final = evolve(settings)
    print(final)
    return 0
