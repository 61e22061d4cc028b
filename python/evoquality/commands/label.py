"""`evoquality label`: stage-1 pseudo-labelling from the command line.

    evoquality label --model DIR --images DIR|MANIFEST --pairs N --votes K --out DIR [--mode compare|score]
    accelerate launch --num_processes N -m evoquality label ...      (shards batches over N GPUs)
    accelerate launch --multi_gpu --num_processes N -m evoquality label ...   (N CPU processes, gloo; with
                                                    --cpu accelerate starts a single process)

Every `LabelConfig` field is an option (``--max-new-tokens``, ``--label soft``, ``--min-margin 4`` ...); vLLM engine
arguments go through ``--vllm-engine-arg KEY=VALUE`` (repeated). The run prints the JSON summary at the end;
re-running the same command resumes an interrupted run.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import MISSING


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from evoquality.labelling.config import config_fields

    parser.description = __doc__.splitlines()[0]
    for f in config_fields():
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        help_text = f.metadata.get("help", "")
        if f.type in ("dict", dict):  # KEY=VALUE pairs, one per repetition of the flag
            parser.add_argument(flag, dest=f.name, action="append", default=[], metavar="KEY=VALUE",
                                help=help_text)
            continue
        if f.type in ("bool", bool):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=f.default,
                                help=help_text)
            continue
        kind = {"int": int, "float": float}.get(str(f.type).replace("Optional[str]", "str"), str)
        required = f.default is MISSING
        parser.add_argument(flag, dest=f.name, type=kind, required=required, choices=f.metadata.get("choices"),
                            default=None if required else f.default,
                            help=help_text + ("" if required else f" (default: {f.default})"))


def config_value(f, value):
    if f.type not in ("dict", dict):
        return value
    from evoquality.labelling.vllm_backend import parse_engine_arg

    out = {}
    for text in value:
        key, parsed = parse_engine_arg(text)
        if key in out:
            raise ValueError(f"{f.name}: {key!r} is given twice")
        out[key] = parsed
    return out


def run(args: argparse.Namespace) -> int:
    from evoquality.labelling.config import LabelConfig, config_fields
    from evoquality.labelling.runner import run_labelling

    cfg = LabelConfig(**{f.name: config_value(f, getattr(args, f.name)) for f in config_fields()})
    summary = run_labelling(cfg)
    if summary is not None:
        print(json.dumps(summary, indent=2))
    return 0
