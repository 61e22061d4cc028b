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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from evoquality.config_fields import add_dataclass_arguments
    from evoquality.labelling.config import LabelConfig

    parser.description = __doc__.splitlines()[0]
    add_dataclass_arguments(parser, LabelConfig)


def run(args: argparse.Namespace) -> int:
    from evoquality.config_fields import values_from_args
    from evoquality.labelling.config import LabelConfig
    from evoquality.labelling.runner import run_labelling

    summary = run_labelling(LabelConfig(**values_from_args(args, LabelConfig)))
    if summary is not None:
        print(json.dumps(summary, indent=2))
    return 0
