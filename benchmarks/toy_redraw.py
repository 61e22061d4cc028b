"""How much of one round's result is the round's own luck? Re-run round T of finished toy runs (`toy_evolution.py`)
from their own round T-1 checkpoint with a fresh draw — or with one setting changed — and score every checkpoint with
N sampled answers per held-out image.

    python benchmarks/toy_redraw.py --runs DIR/lr-halving-seed1 DIR/lr-halving-seed2 DIR/lr-halving-seed3 \\
        --round 3 --variants replicate k32 unparsed0 --out OUT --jobs 2

A variant changes one thing and keeps the rest of the source run's settings (its `evolve.json`):

    replicate   another seed for round T (its pairs, votes and rollouts): the same round, drawn again
    k32         K = 32 votes per pair in round T's stage 1 (the paper's K; the toy uses 8)
    unparsed0   an answer without a score gets reward 0 in round T (`--unparsed-reward 0`)
    ref-initial the KL reference of round T is the initial model (`--ref-model initial`)
    soft        round T trains on the vote fraction K_x / (K_x + K_y) instead of the hard majority label
                (`--label-label soft`; the same pairs and votes as the source's round T)

Each draw lives in OUT/<variant>-<run name>: rounds 1..T-1 are links to the source run's (never written), round T
is an ordinary resumable `rounds.evolve` round. OUT/toy_redraw.json holds, per draw, the held-out SRCC of round T-1
(the source checkpoint, scored once) and round T, the gain, the parse failures and the accuracy of round T's labels
against the hidden truth; OUT/toy_redraw.md the table. Finished draws are kept, so an interrupted call resumes.
The source runs' own round T is listed as the variant `source`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import cpu_model, git_commit  # noqa: E402

RESULTS = "toy_redraw.json"
# What each variant changes in the source run's stored settings: (train fields, label fields).
VARIANTS = {
    "replicate": lambda train, label: train.update(seed=train["seed"] + 100),
    "k32": lambda train, label: label.update(votes=32),
    "unparsed0": lambda train, label: train.update(unparsed_reward=0.0),
    "ref-initial": lambda train, label: train.update(ref_model="initial"),
    "soft": lambda train, label: label.update(label="soft"),
}


def redraw_settings(source: Path, out: Path, variant: str, t: int):
    """The EvolveSettings of `variant` drawn again from the source run's round t-1, in `out` (linked rounds)."""
    from evoquality.training.config import TrainConfig
    from evoquality.training.rounds import EvolveSettings, round_dir

    stored = json.loads((source / "evolve.json").read_text())["settings"]
    train, label = dict(stored["train"]), dict(stored["label"])
    VARIANTS[variant](train, label)
    out.mkdir(parents=True, exist_ok=True)
    for k in range(1, t):
        link = round_dir(out, k)
        if not link.exists():
            link.symlink_to(round_dir(source, k).resolve(), target_is_directory=True)
    return EvolveSettings(out=str(out), model=stored["model"], images=stored["images"], rounds=t,
                          train=TrainConfig(**train), label=label, round2_variants=stored["round2_variants"],
                          round2_same_content_pairs=stored["round2_same_content_pairs"],
                          lr_round_factor=stored.get("lr_round_factor", 1.0))


def _scored(run_dir: str, t: int, n_samples: int) -> dict:
    """A source run's round t as it stands: its checkpoint's held-out metrics and the accuracy of its labels."""
    import torch

    from evoquality.toy import report
    from evoquality.training.rounds import round_dir
    from evoquality.training.stage import final_model_dir

    torch.set_num_threads(1)
    rd = round_dir(run_dir, t)
    return {**report.heldout_metrics(final_model_dir(rd / "train"), run_dir, n_samples=n_samples),
            **report.label_metrics(rd / "labels", run_dir)}


def _draw(job: tuple) -> dict:
    """One redraw: round t of `variant` from `source`, then its held-out metrics and label accuracy."""
    import torch

    from evoquality.toy import report
    from evoquality.training.rounds import evolve, round_dir

    source, out, variant, t, n_samples = job
    torch.set_num_threads(1)
    final = evolve(redraw_settings(Path(source), Path(out), variant, t))
    labels = report.label_metrics(round_dir(out, t) / "labels", source)  # the truth lives in the source run
    return {**report.heldout_metrics(final, source, n_samples=n_samples), **labels}


def main(argv=None) -> int:
    import multiprocessing

    from evoquality.toy.report import HELDOUT_SAMPLES
    from evoquality.training.rounds import round_dir

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, nargs="+", required=True, help="finished toy runs (toy_evolution.py's)")
    p.add_argument("--round", type=int, required=True, help="the round T to draw again (>= 2)")
    p.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["replicate"])
    p.add_argument("--samples", type=int, default=HELDOUT_SAMPLES,
                   help="sampled answers per held-out image (default: the runs' own report's N)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--jobs", type=int, default=1, help="draws at once, one thread each")
    args = p.parse_args(argv)
    if args.round < 2:
        p.error("--round must be >= 2: round 1 starts from the base model, run it with toy_evolution.py")
    for run in args.runs:
        if not (round_dir(run, args.round) / "DONE").is_file():
            p.error(f"{run} has no finished round {args.round}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / RESULTS
    done = json.loads(path.read_text())["draws"] if path.is_file() else {}
    todo = {}
    for run in args.runs:
        for t in (args.round - 1, args.round):  # the source checkpoints, scored the same way as the draws
            key = f"source/{run.name}/round {t}"
            if key not in done:
                todo[key] = (_scored, (str(run), t, args.samples))
        for variant in args.variants:
            key = f"{variant}/{run.name}/round {args.round}"
            if key not in done:
                todo[key] = (_draw, ((str(run), str(args.out / f"{variant}-{run.name}"), variant, args.round,
                                      args.samples),))
    meta = {"device": cpu_model(), "commit": git_commit(), "round": args.round, "samples": args.samples,
            "runs": [str(r) for r in args.runs]}
    env_threads = os.environ.setdefault("OMP_NUM_THREADS", "1")  # the workers inherit it
    print(f"[toy_redraw] {len(todo)} checkpoints to score ({args.jobs} at once, {env_threads} thread each)",
          flush=True)
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {key: pool.submit(fn, *fn_args) for key, (fn, fn_args) in todo.items()}
        for key, future in futures.items():
            done[key] = future.result()
            path.write_text(json.dumps({"meta": meta, "draws": done}, indent=1))
            print(f"[toy_redraw] {key}: SRCC {done[key]['srcc']:.3f}", flush=True)
    rows = table_rows(done, args.runs, args.round, ["source", *args.variants])
    (args.out / "toy_redraw.md").write_text(markdown(rows, meta))
    print((args.out / "toy_redraw.md").read_text())
    return 0


def table_rows(draws: dict, runs, t: int, variants) -> list[dict]:
    """Per variant: round t's gain over the source's round t-1 for every run, and their median and mean."""
    rows = []
    for variant in variants:
        gains, labels = [], []
        for run in runs:
            name = Path(run).name
            before, after = draws.get(f"source/{name}/round {t - 1}"), draws.get(f"{variant}/{name}/round {t}")
            if before and after:
                gains.append(after["srcc"] - before["srcc"])
                labels.append(after.get("pseudo_acc"))
        if gains:
            rows.append({"variant": variant, "gains": gains, "median": statistics.median(gains),
                         "mean": statistics.mean(gains), "label_acc": labels})
    return rows


def markdown(rows: list[dict], meta: dict) -> str:
    t = meta["round"]
    lines = [f"Device: {meta['device']}; commit {meta['commit']}; held-out SRCC with {meta['samples']} samples per "
             f"image; gain = round {t} - round {t - 1} of the same source run.", "",
             f"| variant | gain of round {t} per run | median | mean | label acc of round {t} |", "|---|---|---|---|---|"]
    for r in rows:
        acc = ", ".join("—" if a is None else f"{a:.3f}" for a in r["label_acc"])
        lines.append(f"| {r['variant']} | {', '.join(f'{g:+.3f}' for g in r['gains'])} | {r['median']:+.3f} | "
                     f"{r['mean']:+.3f} | {acc} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
