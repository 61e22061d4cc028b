"""The default run's report: how good each checkpoint is on the held-out benchmark, and how good the
pseudo-labels it voted were — computed against the hidden truth, for the report only.

Held-out columns (the synthetic-benchmark protocol, docs/datasets.md): SRCC = L-test (mean SRCC of score vs -level per
(crop, type)) of the mean of N sampled scores and of the greedy score; pair acc = P-test of the sampled mean;
parse = share of sampled answers without a score. Label columns, from the stage-1 votes the checkpoint cast on the
next round's pool pairs: pseudo acc = majority-vote label vs truth (a tie counts 1/2); vote acc = single valid votes
vs truth; ties = share of tied pairs; vote parse = share of unparseable votes; synthetic acc = the label accuracy on
round-2 synthetic pairs whose order is known by construction (an image against its own further-distorted variant,
or two variants of one image of one type at different levels).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

from evoquality.config_fields import preset
from evoquality.evaluation.scorers import ScoreSettings
from evoquality.toy import datasets

# Held-out scoring: ScoreSettings (the scoring protocol's one definition) where the toy departs from its defaults.
# The recorded toy figures were made with these values, so the ones equal to the defaults are pinned here too.
HELDOUT_SCORING = preset(
    ScoreSettings,
    mode="greedy",  # = the default; the report reads the greedy score and the mean of N samples: this mode gives both
    # N sampled scores per held-out image (plus the greedy answer) [decision: 32; the scorer's default is 8]: with 8, one
    # checkpoint's SRCC moved by +-0.03 (sd) from one sampling seed to the next, as much as a round's gain; with 32 by
    # +-0.007 (benchmarks/results/2026-11-30-cpu-method/eval_noise.json). The prefill is shared by the N samples, so
    # the cost is the N decodes: 19-29 s per checkpoint against 8-15 s with N = 8 on 2 cores (docs/toy.md).
    n_samples=32,
    max_new_tokens=16,  # default 256: the toy answers "\boxed{q.qq}" directly (no reasoning text)
    batch_size=30,  # default 8: toy images are a few visual tokens, so larger batches are cheaper per image on CPU;
    # the batches also set the sampling seeds (seed + batch index), so 30 is part of the recorded figures
    dtype="float32",  # default auto (the checkpoint's): the toy is scored on CPU in float32, whatever was saved
)
HELDOUT_SAMPLES = HELDOUT_SCORING["n_samples"]  # N, under the name it had before the preset
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
REPORT_PNG = "metrics.png"


def heldout_scores(model_dir, run_dir, *, seed: int = 0, n_samples: int = HELDOUT_SAMPLES, progress: bool = False):
    """Score the run's held-out benchmark with a checkpoint: (manifest, ScoreResult), per image the greedy score and
    the mean of `n_samples` sampled scores (the report's protocol, `HELDOUT_SCORING`)."""
    from evoquality.data.manifest import read_manifest
    from evoquality.evaluation.scorers import ModelScorer
    from evoquality.modeling import load_policy

    settings = ScoreSettings(**{**HELDOUT_SCORING, "n_samples": n_samples, "seed": seed})
    manifest = read_manifest(datasets.write_heldout(run_dir))
    policy = load_policy(model_dir, device="cpu", dtype=settings.dtype)
    scorer = ModelScorer(policy, n_samples=settings.n_samples, mode=settings.mode, temperature=settings.temperature,
                         max_new_tokens=settings.max_new_tokens, batch_size=settings.batch_size, seed=settings.seed)
    result = scorer.score([manifest.image_path(r) for r in manifest.records], progress=progress)
    rejected = {k: v for k, v in result.failures.items() if k.startswith("image rejected")}
    if rejected:  # the held-out images are ours: one that cannot be read means a broken run directory
        n_bad = sum(rejected.values())
        raise RuntimeError(f"held-out benchmark {manifest.header.root}: {n_bad} of {len(manifest)} images could not "
                           f"be read ({rejected}); delete {datasets.REPORT_DIR}/{datasets.HELDOUT_DIR} to rebuild it")
    return manifest, result


def heldout_metrics(model_dir, run_dir, *, seed: int = 0, n_samples: int = HELDOUT_SAMPLES,
                    progress: bool = False) -> dict:
    from evoquality.evaluation.protocol import l_test, p_test

    manifest, result = heldout_scores(model_dir, run_dir, seed=seed, n_samples=n_samples, progress=progress)
    n_answers = len(manifest) * n_samples
    unparsed = result.failures.get("sampled answers unparsed", 0)
    return {
        "srcc": l_test(manifest, result.sampled)["l_test"],
        "srcc_greedy": l_test(manifest, result.greedy)["l_test"],
        "pair_acc": p_test(manifest, result.sampled)["p_test"],
        "parse_fail": unparsed / n_answers,
        "n_images": len(manifest),
        "heldout_samples": n_samples,
    }


def variant_origin(run_dir):
    """Variant file -> (source image, type, level) for the round-2 synthetic variants (`labelling.variants` names a
    variant `<source index>_<type>_<level>.png`, indices into the pool in manifest order)."""
    from evoquality.labelling.pool import discover_pool

    paths = discover_pool(datasets.pool_manifest(run_dir)).paths

    def origin(path: str):
        name = Path(path)
        if name.parent.name != "variants":
            return None
        index, _, rest = name.stem.partition("_")
        dist_type, _, level = rest.rpartition("_")
        return paths[int(index)], dist_type, int(level)

    return origin


def synthetic_truth(a: str, b: str, origin) -> Optional[bool]:
    """True / False when image a is better / worse than b by construction, None when no order is defined."""
    oa, ob = origin(a), origin(b)
    if oa and ob and oa[0] == ob[0] and oa[1] == ob[1] and oa[2] != ob[2]:
        return oa[2] < ob[2]  # same source, same type: the milder level is better
    if ob and not oa and ob[0] == a:
        return True  # an image against its own further-distorted variant
    if oa and not ob and oa[0] == b:
        return False
    return None


def label_metrics(labels_dir, run_dir) -> dict:
    """Quality of a round's stage-1 labels against the hidden truth (pairs inside one distortion series, and the
    synthetic pairs whose order is known by construction)."""
    from evoquality.labelling.labels import read_labels

    truth = datasets.read_truth(run_dir)
    rows = read_labels(labels_dir)
    origin = variant_origin(run_dir)
    synthetic = synthetic_right = 0.0
    pseudo = right_votes = valid_votes = invalid = all_valid = ties = judged = 0.0
    for row in rows:
        a, b = truth.get(row["image_i"]), truth.get(row["image_j"])
        valid_votes_pair = row["votes_i"] + row["votes_j"]
        invalid += row["invalid"]
        all_valid += valid_votes_pair
        if a is None or b is None:
            known = synthetic_truth(row["image_i"], row["image_j"], origin)
            if known is not None:
                synthetic += 1
                synthetic_right += 0.5 if row["p_star"] == 0.5 else float((row["p_star"] > 0.5) == known)
            continue
        if (a["content"], a["dist_type"]) != (b["content"], b["dist_type"]) or a["level"] == b["level"]:
            continue  # no defined better image
        judged += 1
        i_better = a["level"] < b["level"]
        ties += row["p_star"] == 0.5
        pseudo += 0.5 if row["p_star"] == 0.5 else float((row["p_star"] > 0.5) == i_better)
        right_votes += row["votes_i"] if i_better else row["votes_j"]
        valid_votes += valid_votes_pair
    n_votes = all_valid + invalid
    return {
        "pseudo_acc": pseudo / judged if judged else math.nan,
        "vote_acc": right_votes / valid_votes if valid_votes else math.nan,
        "tie_rate": ties / judged if judged else math.nan,
        "vote_parse_fail": invalid / n_votes if n_votes else math.nan,
        "n_pairs": int(judged),
        "synthetic_acc": synthetic_right / synthetic if synthetic else math.nan,
        "n_synthetic_pairs": int(synthetic),
    }


_COLUMNS = (("srcc", "held-out SRCC (mean of N)"), ("srcc_greedy", "SRCC (greedy)"), ("pair_acc", "pair acc"),
            ("parse_fail", "parse fail"), ("pseudo_acc", "pseudo-label acc"), ("vote_acc", "single-vote acc"),
            ("tie_rate", "ties"), ("vote_parse_fail", "vote parse fail"), ("synthetic_acc", "synthetic acc"))


def _fmt(v) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def table(rows: list[dict]) -> str:
    head = "| model | " + " | ".join(name for _, name in _COLUMNS) + " |"
    sep = "|---|" + "---|" * len(_COLUMNS)
    body = ["| " + r["model"] + " | " + " | ".join(_fmt(r.get(k)) for k, _ in _COLUMNS) + " |" for r in rows]
    return "\n".join([head, sep, *body])


_PLOTTED = (("srcc", "held-out SRCC (mean of N)"), ("pair_acc", "held-out pair acc"),
            ("pseudo_acc", "pseudo-label acc"), ("vote_acc", "single-vote acc"))


def metrics_figure(rows: list[dict]):
    """One line per metric of `_PLOTTED` over the rounds (row t = checkpoint t; a missing value is a gap)."""
    from evoquality.evaluation.report import new_figure, round_axis

    if not rows:
        raise ValueError("rows must hold at least the base model's row, got none")
    fig = new_figure()
    ax = fig.add_subplot()
    for key, label in _PLOTTED:
        values = [math.nan if row.get(key) is None else float(row[key]) for row in rows]
        if not all(math.isnan(v) for v in values):
            ax.plot(range(len(rows)), values, marker="o", label=label)
    round_axis(ax, len(rows))
    ax.set_title("Toy self-evolution: metrics per round")
    ax.set_ylabel("value")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    return fig


def write_report(run_dir, rows: list[dict], settings: Optional[dict] = None) -> Path:
    """report.json / report.md / metrics.png + .pdf under <run>/toy_report (rewritten after every round)."""
    from evoquality._files import atomic_write
    from evoquality.evaluation.report import save_figure

    folder = Path(run_dir) / datasets.REPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / REPORT_JSON, json.dumps({"rows": rows, "settings": settings or {}}, indent=2))
    atomic_write(folder / REPORT_MD, __doc__.split("\n\n")[1].replace("\n", " ") + "\n\n" + table(rows) + "\n")
    save_figure(metrics_figure(rows), folder / REPORT_PNG)
    return folder
