"""Control runs of the toy world: the embedded default with each round's labels replaced before training — by the
hidden truth (`oracle`: the supervised upper bound) or by fair coin flips (`coinflip`: labels without information).
They measure what the label-free pseudo-labels are worth: the paper's headline comparison is label-free against
supervised training.

    python -m evoquality.toy.controls --control oracle --out DIR [any `evoquality evolve` flag]

Only this module and `report.py` read the truth. `evoquality evolve` never does (tests/toy/test_toy.py runs it
under an audit hook); the controls reach the round loop through `rounds.evolve(label_transform=...)`, which calls
back after stage 1 and trains on the labels it returns. The voted labels stay untouched beside the control's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from evoquality.toy import datasets

CONTROLS = ("oracle", "coinflip")
META_FILE = "control.json"


def control_dir(labels_dir) -> Path:
    """Where the control's labels of a round go: beside the voted ones (round_XX/labels_control)."""
    labels_dir = Path(labels_dir)
    return labels_dir.with_name(labels_dir.name + "_control")


def control_labels(control: str, labels_dir, run_dir, seed: int) -> Path:
    """Write the round's labels with p* replaced by the control's and return their directory.

    oracle: p* = 1 when image_i has the lower distortion level of its series (or, for a round-2 synthetic pair, is the
    better one by construction: an image against its own further-distorted variant, two variants of one image of
    one type), else 0; a pair without a defined better image (across series, equal levels, unrelated variants) is
    left out and counted. coinflip: p* = 0 or 1 by a fair coin per pair (seeded). The votes stay the model's.
    """
    from evoquality.labelling.labels import read_labels, write_labels
    from evoquality._files import atomic_write

    if control not in CONTROLS:
        raise ValueError(f"control must be one of {CONTROLS}, got {control!r}")
    rows = read_labels(labels_dir)
    out_rows, undefined = [], 0
    if control == "oracle":
        from evoquality.toy.report import synthetic_truth, variant_origin

        truth, origin = datasets.read_truth(run_dir), variant_origin(run_dir)
        for row in rows:
            a, b = truth.get(row["image_i"]), truth.get(row["image_j"])
            if a is not None and b is not None:
                same_series = (a["content"], a["dist_type"]) == (b["content"], b["dist_type"])
                i_better = a["level"] < b["level"] if same_series and a["level"] != b["level"] else None
            else:
                i_better = synthetic_truth(row["image_i"], row["image_j"], origin)
            if i_better is None:
                undefined += 1
                continue
            out_rows.append({**row, "p_star": 1.0 if i_better else 0.0})
    else:
        coins = np.random.default_rng([seed, 0xC01F]).random(len(rows)) < 0.5
        out_rows = [{**row, "p_star": float(c)} for row, c in zip(rows, coins.tolist())]
    out = control_dir(labels_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_labels(out, out_rows)
    meta = {"control": control, "source": str(Path(labels_dir).resolve()), "seed": seed, "rows": len(out_rows),
            "left_out_undefined": undefined}
    atomic_write(out / META_FILE, json.dumps(meta, indent=2) + "\n")
    return out


def label_transform(control: str, run_dir, seed: int) -> Callable[[int, Path], Path]:
    """The `rounds.evolve` callback of a control: round t's voted labels -> the control's (seed + t per round)."""
    if control not in CONTROLS:
        raise ValueError(f"control must be one of {CONTROLS}, got {control!r}")
    return lambda t, labels_dir: control_labels(control, labels_dir, run_dir, seed + t)


if __name__ == "__main__":
    # The entry point builds on `evoquality evolve`'s flags, so it lives with the commands.
    from evoquality.commands.controls import main

    raise SystemExit(main())
