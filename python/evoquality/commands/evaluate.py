"""`evoquality eval`: score test sets with a model and the classical yardsticks, write JSON, markdown and plots.

    evoquality eval --model CKPT --dataset koniq10k --root /data/koniq --dataset csiq --root /data/CSIQ \\
        --dataset synthetic --root bench/ --samples 8 --out eval/

Each ``--dataset`` may be followed by its own ``--root``, ``--subset`` and ``--label-file``; ``--dataset synthetic``
without ``--root`` builds the default synthetic benchmark under OUT/synthetic first. Outputs under --out:
``results.json`` (every metric, CI, parse-failure rate, settings), ``results.md`` (one row per dataset and scorer,
plus WAVG, with subset and n), ``scatter_<dataset>.png`` and ``.pdf`` (prediction vs MOS with the fitted logistic,
or vs level for synthetic sets) and ``predictions_<dataset>.jsonl`` (per image). The model is scored greedily and
with the mean of N samples (docs/datasets.md "Evaluation protocol"); without --model only the classical rows are
computed. The work is done by `evaluation.runner`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Optional

_NOT_FLAGS = ("mode",)  # the protocol scores greedily, plus the mean of --samples: both, not one of them


def _model_scorer(args):
    if args.model is None:
        return None
    from evoquality.config_fields import values_from_args
    from evoquality.evaluation.scorers import ModelScorer, ScoreSettings
    from evoquality.modeling import load_policy

    settings = values_from_args(args, ScoreSettings, exclude=_NOT_FLAGS)
    policy = load_policy(args.model, dtype=settings.pop("dtype"), device=args.device)
    # The greedy score, and with n_samples > 0 the mean of the samples as well: both rows of the protocol.
    return ModelScorer(policy, mode="greedy", **settings, name=str(args.model))


class _DatasetAction(argparse.Action):
    """--dataset starts a new entry; --root/--subset/--label-file set fields of the latest one."""

    def __call__(self, parser, namespace, value, option_string=None):
        entries = getattr(namespace, "datasets", None) or []
        field = self.dest
        if field == "dataset":
            entries.append({"name": value, "root": None, "subset": None, "label_file": None})
        else:
            if not entries:
                parser.error(f"{option_string} must follow a --dataset")
            if entries[-1][field] is not None:
                parser.error(f"{option_string} given twice for --dataset {entries[-1]['name']}")
            entries[-1][field] = value
        namespace.datasets = entries


def _default_synthetic(folder: Path, seed: int, size: Optional[int]) -> Path:
    """The default synthetic benchmark (8 bundled photos x `DEFAULT_TYPES` x 5 levels), built once per folder."""
    from evoquality.data import MANIFEST_NAME
    from evoquality.data.synthetic import DEFAULT_TYPES, build_synthetic_benchmark

    if not (folder / MANIFEST_NAME).is_file():
        build_synthetic_benchmark(folder, None, types=DEFAULT_TYPES, seed=seed, size=size)
    return folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from evoquality.config_fields import add_dataclass_arguments
    from evoquality.evaluation import protocol
    from evoquality.evaluation.scorers import ScoreSettings

    parser.description = __doc__.splitlines()[0]
    parser.add_argument("--model", type=Path, help="checkpoint directory (omit for the classical rows only)")
    parser.add_argument("--dataset", dest="dataset", action=_DatasetAction, required=True,
                        help="a standard set (koniq10k, spaq, livec, kadid10k, pipal, agiqa3k, csiq, tid2013), "
                             "'synthetic'/'manifest' (ROOT/manifest.jsonl), or a label file / image folder path")
    parser.add_argument("--root", dest="root", action=_DatasetAction, help="folder of the preceding --dataset")
    parser.add_argument("--subset", dest="subset", action=_DatasetAction, help="subset of the preceding --dataset")
    parser.add_argument("--label-file", dest="label_file", action=_DatasetAction,
                        help="label file of the preceding --dataset, overriding its default")
    parser.add_argument("--synthetic-size", type=int, default=None,
                        help="with --dataset synthetic and no --root: build the default benchmark under "
                             "OUT/synthetic at this square size (default: the photos' native sizes)")
    parser.add_argument("--missing", choices=("error", "skip"), default="error",
                        help="images listed but absent: fail (default) or skip and count them")
    add_dataclass_arguments(parser, ScoreSettings, exclude=_NOT_FLAGS)
    parser.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: CUDA when present)")
    parser.add_argument("--reference", default="psnr,ssim,piqe",
                        help="classical scorers to add as rows: comma list of psnr, ssim, piqe, or 'none'")
    parser.add_argument("--bootstrap", type=int, default=protocol.DEFAULT_BOOTSTRAP,
                        help="bootstrap resamples for the 95%% CIs (0 = none)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images of each set (smoke runs)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("eval_out"))


def run(args) -> int:
    from evoquality.data import load_dataset
    from evoquality.evaluation.runner import evaluate_manifest, limit_manifest, write_outputs
    from evoquality.evaluation.scorers import REFERENCE_SCORERS

    reference = [] if args.reference == "none" else [s.strip() for s in args.reference.split(",") if s.strip()]
    unknown = [s for s in reference if s not in REFERENCE_SCORERS]
    if unknown:
        raise ValueError(f"--reference: unknown scorer(s) {unknown}; choose from {sorted(REFERENCE_SCORERS)}")
    if args.model is None and not reference:
        raise ValueError("nothing to evaluate: give --model and/or --reference scorers")
    if args.n_samples < 0 or args.bootstrap < 0:
        raise ValueError("--samples and --bootstrap must be >= 0")
    manifests = []
    for d in args.datasets:
        try:
            if d["name"] == "synthetic" and d["root"] is None:
                d["root"] = _default_synthetic(args.out / "synthetic", args.seed, args.synthetic_size)
            m = load_dataset(d["name"], d["root"], label_file=d["label_file"], subset=d["subset"],
                             missing=args.missing)
            manifests.append(limit_manifest(m, args.limit))
        except (ValueError, ImportError) as exc:  # ManifestError is a ValueError: a bad file or argument, named
            raise type(exc)(f"--dataset {d['name']}: {exc}") from None
    model = _model_scorer(args)
    entries, preds = [], []
    for m in manifests:
        t0 = time.perf_counter()
        entry, p = evaluate_manifest(m, model, reference, n_boot=args.bootstrap, seed=args.seed,
                                     progress=not args.no_progress)
        entry["seconds"] = round(time.perf_counter() - t0, 3)
        entries.append(entry)
        preds.append(p)
    settings = {"model": str(args.model) if args.model else None, "samples": args.n_samples,
                "temperature": args.temperature, "max_new_tokens": args.max_new_tokens, "seed": args.seed,
                "bootstrap": args.bootstrap, "reference": reference, "limit": args.limit,
                "device": str(model.policy.device) if model else None}
    write_outputs(args.out, entries, manifests, preds, settings)
    print((args.out / "results.md").read_text())
    print(f"wrote {args.out / 'results.json'}, {args.out / 'results.md'} and the scatter plots")
    return 0
