"""`evoquality score IMG... (--model CKPT | --metric piqe)`: one line per image, ``path<TAB>score``.

An image without a score (unreadable, or an answer that did not parse) prints ``nan`` and is counted on stderr; the
exit status is 1 when no image got a score. ``--json`` prints one JSON object per line instead.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from evoquality.config_fields import add_dataclass_arguments
    from evoquality.evaluation.scorers import ScoreSettings

    parser.description = __doc__.splitlines()[0]
    parser.add_argument("images", nargs="+", type=Path, help="image files")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", type=Path, help="checkpoint directory")
    which.add_argument("--metric", choices=("piqe",), help="a classical no-reference metric instead of a model")
    add_dataclass_arguments(parser, ScoreSettings)
    parser.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: CUDA when present)")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of tab-separated text")


def run(args) -> int:
    from evoquality.api import create_scorer
    from evoquality.config_fields import values_from_args
    from evoquality.evaluation.scorers import ScoreSettings

    if args.metric:
        scorer = create_scorer(args.metric)
    else:
        settings = values_from_args(args, ScoreSettings)
        if settings["mode"] != "mean":  # --samples counts only for the mean: a greedy score samples nothing
            settings["n_samples"] = 0
        scorer = create_scorer(args.model, **settings, device=args.device)
    result = scorer.score([str(p) for p in args.images])
    for path, value in zip(args.images, result.scores):
        if args.json:
            print(json.dumps({"image": str(path), "score": None if math.isnan(value) else float(value),
                              "higher_better": scorer.higher_better}))
        else:
            print(f"{path}\t{value:.4f}" if not math.isnan(value) else f"{path}\tnan")
    if result.failures:
        print("no score: " + ", ".join(f"{k} {v}" for k, v in result.failures.items()), file=sys.stderr)
    return 0 if any(not math.isnan(v) for v in result.scores) else 1
