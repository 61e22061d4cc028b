"""The embedded default's learning figures: `evoquality evolve` (the README's main job) over several seeds, its
ablations — K = 1 vote, and score averaging instead of voting — and two controls that replace each round's labels
before training: the hidden truth (`oracle`, the supervised upper bound) and fair coins (`coinflip`). Each variant
runs exactly as a user would run it (the controls through `python -m evoquality.toy.controls`, the only path that
may read the truth).

    python benchmarks/toy_evolution.py --out benchmarks/results/<date>-toy                  # 3 seeds x every variant
    python benchmarks/toy_evolution.py --variants default:3 oracle coinflip k1:1 mean:1 --jobs 2 --out DIR
    python benchmarks/toy_evolution.py --variants default oracle --rounds 1 --out DIR -- --max-steps 300

A variant may carry its own number of rounds (`name:rounds`); `--jobs 2` runs two at once with one thread each (the
wall times are then not those of a run alone).

Writes DIR/toy_evolution.json and .md: per variant the median over seeds (and every seed) of held-out SRCC before
training and after each round, the gain of each round, pairwise accuracy, the accuracy of the labels each round
trained on, and wall time; and how much of the oracle's gain each label-free variant keeps. DIR/toy_evolution.png
and .pdf plot held-out SRCC per round per variant (median, seeds' min-max); `--figure-only` redraws them from an
existing DIR/toy_evolution.json without running anything.

    python benchmarks/toy_evolution.py --out DIR --reevaluate 32 --jobs 2

re-scores every checkpoint of the finished runs in DIR/toy_evolution.json (the base model once) on the same held-out
benchmark with N sampled answers per image instead of the run's own (32 by default; runs made before 2026-11-30
reported 8), and writes DIR/toy_evolution_n<N>.json, .md, .png and .pdf from those figures. Why: with 8 samples one
checkpoint's held-out SRCC moves by about +-0.03 from one sampling seed to the next (docs/toy.md), as much as a
round's gain; the variance of a mean of N samples falls as 1/N.
Checkpoints already scored are kept in DIR/reevaluation_n<N>.json, so an interrupted re-evaluation resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import cpu_model, git_commit, versions  # noqa: E402

from evoquality.evaluation.report import new_figure, round_axis, save_figure  # noqa: E402

EVOLVE = ["-m", "evoquality", "evolve"]
CONTROL = ["-m", "evoquality.toy.controls", "--control"]
VARIANTS = {
    "default": EVOLVE,                                                    # K = 8 majority votes
    "k1": EVOLVE + ["--label-votes", "1"],                                # one vote per pair
    "mean": EVOLVE + ["--label-mode", "score", "--label-label", "mean"],  # mean of K = 8 sampled scores per image
    "lr-halving": EVOLVE + ["--lr-round-factor", "0.5"],                # round t at the learning rate x 0.5^(t-1)
    "round-start": EVOLVE + ["--ref-model", "round_start"],             # KL to each round's start (the default
                                                                          # before commit cc9198a)
    "oracle": CONTROL + ["oracle"],                                       # the hidden truth (supervised)
    "coinflip": CONTROL + ["coinflip"],                                   # labels without information
}


def run_one(out: Path, variant: str, seed: int, rounds: int, extra: list[str], threads: Optional[int] = None) -> dict:
    run_dir = out / f"{variant}-seed{seed}"
    cmd = [sys.executable, *VARIANTS[variant], "--out", str(run_dir), "--seed", str(seed), "--rounds", str(rounds),
           *extra]
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {}))
    t0 = time.monotonic()
    log = out / f"{variant}-seed{seed}.log"
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    wall = time.monotonic() - t0
    if proc.returncode:
        return {"variant": variant, "seed": seed, "error": f"exit {proc.returncode}, see {log.name}"}
    rows = json.loads((run_dir / "toy_report" / "report.json").read_text())["rows"]
    return {"variant": variant, "seed": seed, "wall_s": round(wall, 1), "rows": rows}


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(results: list[dict], rounds: int) -> list[dict]:
    """Medians over seeds per variant. gain_t = SRCC after round t minus SRCC before it (per seed, then median);
    label_acc_t = accuracy of the labels round t trained on (voted by the previous model, or the control's)."""
    out = []
    for variant in dict.fromkeys(r["variant"] for r in results):
        ok = [r for r in results if r["variant"] == variant and "rows" in r]
        row = {"variant": variant, "seeds": [r["seed"] for r in ok], "wall_s": _median([r["wall_s"] for r in ok])}
        for t in range(rounds + 1):
            for key in ("srcc", "pair_acc", "pseudo_acc", "vote_acc", "tie_rate"):
                row[f"{key}_{t}"] = _median([r["rows"][t].get(key) for r in ok if len(r["rows"]) > t])
        for t in range(1, rounds + 1):
            gains = [r["rows"][t]["srcc"] - r["rows"][t - 1]["srcc"] for r in ok if len(r["rows"]) > t]
            row[f"gain_{t}"] = _median(gains)
            row[f"gain_{t}_per_seed"] = [round(g, 3) for g in gains]
            row[f"label_acc_{t}"] = row[f"pseudo_acc_{t - 1}"]
        row["gain_total"] = _median([r["rows"][-1]["srcc"] - r["rows"][0]["srcc"] for r in ok])
        out.append(row)
    oracle = next((s for s in out if s["variant"] == "oracle"), None)
    for s in out:  # the paper's headline comparison: label-free against supervised, after the same round 1
        base = oracle["gain_1"] if oracle else None
        s["share_of_oracle_gain"] = s["gain_1"] / base if base and s["gain_1"] is not None else None
    return out


def markdown(summary: list[dict], rounds: int, meta: dict) -> str:
    f = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    head = ["variant", "seeds"] + [f"SRCC r{t}" for t in range(rounds + 1)]
    head += [f"gain r{t} (per seed)" for t in range(1, rounds + 1)] + [f"label acc r{t}" for t in range(1, rounds + 1)]
    head += ["ties r1", "total gain", "round-1 gain / oracle's", "wall s"]
    lines = [f"Device: {meta['device']}; commit {meta['commit']}; medians over seeds; extra flags: "
             f"{' '.join(meta['extra_flags']) or 'none'}."
             + (f" Held-out figures re-scored with N = {meta['reevaluated']['n_samples']} samples per image (commit "
                f"{meta['reevaluated']['commit']})." if meta.get("reevaluated") else ""), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summary:
        cells = [s["variant"], ",".join(map(str, s["seeds"]))] + [f(s[f"srcc_{t}"]) for t in range(rounds + 1)]
        for t in range(1, rounds + 1):
            cells.append(f"{f(s[f'gain_{t}'])} ({', '.join(f'{g:+.3f}' for g in s[f'gain_{t}_per_seed'])})")
        cells += [f(s[f"label_acc_{t}"]) for t in range(1, rounds + 1)]
        share = s["share_of_oracle_gain"]
        cells += [f(s["tie_rate_0"]), f(s["gain_total"]), "—" if share is None else f"{100 * share:.0f} %",
                  "—" if s["wall_s"] is None else f"{s['wall_s']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def srcc_figure(results: list[dict]):
    """Held-out SRCC per round, one line per variant through the median over its seeds, error bars from the lowest to
    the highest seed. Variants sit side by side (a small x offset each) so that their bars do not hide each other."""
    runs = {}
    for r in results:
        if "rows" in r:
            runs.setdefault(r["variant"], []).append(r["rows"])
    if not runs:
        raise ValueError("results must hold at least one finished run, got none")
    fig = new_figure()
    ax = fig.add_subplot()
    width = 0.3 / max(len(runs) - 1, 1)
    for i, (variant, seeds) in enumerate(runs.items()):
        rounds = range(max(len(rows) for rows in seeds))
        per_round = [[rows[t]["srcc"] for rows in seeds if len(rows) > t and rows[t].get("srcc") is not None]
                     for t in rounds]
        median = [statistics.median(v) for v in per_round]
        spread = [[m - min(v) for m, v in zip(median, per_round)], [max(v) - m for m, v in zip(median, per_round)]]
        x = [t + (i - (len(runs) - 1) / 2) * width for t in rounds]
        label = f"{variant} ({len(seeds)} seed{'s' * (len(seeds) > 1)})"
        ax.errorbar(x, median, yerr=spread, marker="o", capsize=3, label=label)
    round_axis(ax, max(len(rows) for seeds in runs.values() for rows in seeds))
    ax.set_title("Toy self-evolution: held-out SRCC per round\n(median over seeds, bars: lowest to highest seed)",
                 fontsize="medium")
    ax.set_ylabel("held-out SRCC (mean of N)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    return fig


def _score_checkpoint(job: tuple[str, str, int, int]) -> dict:
    """One held-out evaluation in a worker process (one thread): (checkpoint, run dir, N, seed) -> the report's
    held-out metrics."""
    import torch

    from evoquality.toy import report

    torch.set_num_threads(1)
    model_dir, run_dir, n_samples, seed = job
    return report.heldout_metrics(model_dir, run_dir, seed=seed, n_samples=n_samples)


def reevaluate(out: Path, n_samples: int, jobs: int, seed: int = 0, score=None) -> list[dict]:
    """The runs of OUT/toy_evolution.json with every checkpoint's held-out figures replaced by a re-scoring with
    `n_samples` answers per image (the run's own figures kept as `srcc_run`, `pair_acc_run`). score: a
    `_score_checkpoint` stand-in called in this process (tests); by default `jobs` worker processes score."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from evoquality.toy.base_model import SHIPPED

    runs = json.loads((out / "toy_evolution.json").read_text())["runs"]
    cache_path = out / f"reevaluation_n{n_samples}.json"
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    todo = {}
    for r in runs:
        if "rows" not in r:
            continue
        run_dir = out / f"{r['variant']}-seed{r['seed']}"
        for t in range(len(r["rows"])):
            key = "base" if t == 0 else f"{run_dir.name}/round {t}"
            model = SHIPPED if t == 0 else run_dir / f"round_{t:02d}" / "train" / "model"
            if key not in cache and key not in todo:
                todo[key] = (str(model), str(run_dir), n_samples, seed)
    print(f"[toy_evolution] re-scoring {len(todo)} checkpoints with N = {n_samples} ...", flush=True)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        scored = map(score, todo.values()) if score else pool.map(_score_checkpoint, todo.values())
        for key, metrics in zip(todo, scored):
            cache[key] = metrics
            cache_path.write_text(json.dumps(cache, indent=1))
            print(f"[toy_evolution] {key}: SRCC {metrics['srcc']:.3f}", flush=True)
    for r in runs:
        for t, row in enumerate(r.get("rows", [])):
            fresh = cache["base" if t == 0 else f"{r['variant']}-seed{r['seed']}/round {t}"]
            row["srcc_run"], row["pair_acc_run"] = row["srcc"], row["pair_acc"]
            row.update(srcc=fresh["srcc"], pair_acc=fresh["pair_acc"], parse_fail=fresh["parse_fail"])
    return runs


def _variant(text: str) -> tuple[str, Optional[int]]:
    name, _, rounds = text.partition(":")
    if name not in VARIANTS or (rounds and not rounds.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r}: expected one of {list(VARIANTS)}, optionally ':ROUNDS'")
    return name, int(rounds) if rounds else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--variants", nargs="+", type=_variant, default=[(v, None) for v in VARIANTS],
                   help=f"from {list(VARIANTS)}, each optionally with its own rounds (name:rounds)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of a variant without its own")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (each with one thread when > 1)")
    p.add_argument("--figure-only", action="store_true",
                   help="redraw toy_evolution.png/.pdf from OUT/toy_evolution.json, run nothing")
    p.add_argument("--reevaluate", type=int, default=0, metavar="N",
                   help="re-score the finished runs' checkpoints with N samples per image, run nothing new")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="further `evoquality evolve` flags (after --)")
    args = p.parse_args(argv)
    extra = [a for a in args.extra if a != "--"]
    if args.figure_only:
        runs = json.loads((args.out / "toy_evolution.json").read_text())["runs"]
        print("\n".join(map(str, save_figure(srcc_figure(runs), args.out / "toy_evolution"))))
        return 0
    if args.reevaluate:
        runs = reevaluate(args.out, args.reevaluate, args.jobs)
        meta = json.loads((args.out / "toy_evolution.json").read_text())["meta"]
        meta = {**meta, "reevaluated": {"n_samples": args.reevaluate, "commit": git_commit()}}
        rounds = max(len(r["rows"]) for r in runs if "rows" in r) - 1
        summary = summarise(runs, rounds)
        stem = args.out / f"toy_evolution_n{args.reevaluate}"
        stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "summary": summary, "runs": runs}, indent=2))
        stem.with_suffix(".md").write_text(markdown(summary, rounds, meta))
        save_figure(srcc_figure(runs), stem)
        print(stem.with_suffix(".md").read_text())
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    plan = [(name, rounds or args.rounds, seed) for name, rounds in args.variants for seed in args.seeds]
    max_rounds = max(r for _, r, _ in plan)
    meta = {"device": cpu_model(), "commit": git_commit(), "versions": versions(),
            "rounds": {name: r for name, r, _ in plan}, "extra_flags": extra, "jobs": args.jobs}
    results = []

    def one(job):
        name, rounds, seed = job
        print(f"[toy_evolution] {name} seed {seed} ({rounds} rounds) ...", flush=True)
        result = run_one(args.out, name, seed, rounds, extra, threads=1 if args.jobs > 1 else None)
        print(f"[toy_evolution] {name} seed {seed}: " + (result.get("error") or f"{result['wall_s']:.0f} s"),
              flush=True)
        return result

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for result in pool.map(one, plan):  # in plan order: the files are rewritten after every finished run
            results.append(result)
            summary = summarise(results, max_rounds)
            (args.out / "toy_evolution.json").write_text(json.dumps({"meta": meta, "summary": summary,
                                                                     "runs": results}, indent=2))
            (args.out / "toy_evolution.md").write_text(markdown(summary, max_rounds, meta))
            if any("rows" in r for r in results):
                save_figure(srcc_figure(results), args.out / "toy_evolution")
    print((args.out / "toy_evolution.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
