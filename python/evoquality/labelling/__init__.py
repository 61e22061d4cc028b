"""Stage 1 of EvoQuality: pairwise majority-vote pseudo-labelling (docs/method.md), as a resumable, multi-process tool.

Modules, one job each: `pool` (what images), `pairs` (which pairs), `plan` (what a round labels), `votes` (vote
orders, requests, mapping answers back), `backends` / `vllm_backend` (generation), `store` (the round directory and
its append-only vote shards), `runner` (batches, resume, sharding), `labels` / `score_labels` / `merge` (tally,
labels, summary). Images are loaded by `evoquality.io.load`; the command is `evoquality.commands.label`.

The public entry points are re-exported lazily so `import evoquality.labelling` stays cheap.
"""

from __future__ import annotations

__all__ = ["LabelConfig", "read_labels", "run_labelling"]


def __getattr__(name: str):
    if name == "read_labels":
        from evoquality.labelling.labels import read_labels

        return read_labels
    if name == "LabelConfig":
        from evoquality.labelling.config import LabelConfig

        return LabelConfig
    if name == "run_labelling":
        from evoquality.labelling.runner import run_labelling

        return run_labelling
    raise AttributeError(f"module 'evoquality.labelling' has no attribute {name!r}")
