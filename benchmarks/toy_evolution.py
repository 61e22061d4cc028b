"""The embedded default's learning figures: `evoquality evolve` (the README's main job) over several seeds, its
ablations — K = 1 vote, and score averaging instead of voting — and two controls that replace each round's labels
before training: the hidden truth (`oracle`, the supervised upper bound) and fair coins (`coinflip`). Each variant
runs exactly as a user would run it (the controls through `python -m evoquality.toy.controls`, the only path that
may read the truth).

    python benchmarks/toy_evolution.py --out benchmarks/results/<date>-toy                  # 3 seeds x 5 variants
    python benchmarks/toy_evolution.py --variants default oracle --seeds 1 2 3 --rounds 1 --out DIR -- --max-steps 300

Writes DIR/toy_evolution.json and .md: per variant the median over seeds (and every seed) of held-out SRCC before
training and after each round, the gain of each round, pairwise accuracy, the accuracy of the labels each round
trained on, and wall time; and how much of the oracle's gain each label-free variant keeps.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import cpu_model, git_commit, versions  # noqa: E402

EVOLVE = ["-m", "evoquality", "evolve"]
CONTROL = ["-m", "evoquality.toy.controls", "--control"]
VARIANTS = {
    "default": EVOLVE,                                                    # K = 8 majority votes
    "k1": EVOLVE + ["--label-votes", "1"],                                # one vote per pair
    "mean": EVOLVE + ["--label-mode", "score", "--label-label", "mean"],  # mean of K = 8 sampled scores per image
    "oracle": CONTROL + ["oracle"],                                       # the hidden truth (supervised)
    "coinflip": CONTROL + ["coinflip"],                                   # labels without information
}


def run_one(out: Path, variant: str, seed: int, rounds: int, extra: list[str]) -> dict:
    run_dir = out / f"{variant}-seed{seed}"
    cmd = [sys.executable, *VARIANTS[variant], "--out", str(run_dir), "--seed", str(seed), "--rounds", str(rounds),
           *extra]
    t0 = time.monotonic()
    log = out / f"{variant}-seed{seed}.log"
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
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
        total = [r["rows"][-1]["srcc"] - r["rows"][0]["srcc"] for r in ok if len(r["rows"]) == rounds + 1]
        row["gain_total"] = _median(total)
        out.append(row)
    oracle = next((s for s in out if s["variant"] == "oracle"), None)
    for s in out:  # the paper's headline comparison: label-free against supervised, same budget
        base = oracle["gain_total"] if oracle else None
        s["share_of_oracle_gain"] = s["gain_total"] / base if base and s["gain_total"] is not None else None
    return out


def markdown(summary: list[dict], rounds: int, meta: dict) -> str:
    f = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    head = ["variant", "seeds"] + [f"SRCC r{t}" for t in range(rounds + 1)]
    head += [f"gain r{t} (per seed)" for t in range(1, rounds + 1)] + [f"label acc r{t}" for t in range(1, rounds + 1)]
    head += ["ties r1", "share of oracle gain", "wall s"]
    lines = [f"Device: {meta['device']}; commit {meta['commit']}; medians over seeds; extra flags: "
             f"{' '.join(meta['extra_flags']) or 'none'}.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summary:
        cells = [s["variant"], ",".join(map(str, s["seeds"]))] + [f(s[f"srcc_{t}"]) for t in range(rounds + 1)]
        for t in range(1, rounds + 1):
            cells.append(f"{f(s[f'gain_{t}'])} ({', '.join(f'{g:+.3f}' for g in s[f'gain_{t}_per_seed'])})")
        cells += [f(s[f"label_acc_{t}"]) for t in range(1, rounds + 1)]
        share = s["share_of_oracle_gain"]
        cells += [f(s["tie_rate_0"]), "—" if share is None else f"{100 * share:.0f} %", f"{s['wall_s']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("extra", nargs=argparse.REMAINDER, help="further `evoquality evolve` flags (after --)")
    args = p.parse_args(argv)
    extra = [a for a in args.extra if a != "--"]
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"device": cpu_model(), "commit": git_commit(), "versions": versions(), "rounds": args.rounds,
            "extra_flags": extra}
    results = []
    for variant in args.variants:
        for seed in args.seeds:
            print(f"[toy_evolution] {variant} seed {seed} ...", flush=True)
            results.append(run_one(args.out, variant, seed, args.rounds, extra))
            summary = summarise(results, args.rounds)
            (args.out / "toy_evolution.json").write_text(json.dumps({"meta": meta, "summary": summary,
                                                                     "runs": results}, indent=2))
            (args.out / "toy_evolution.md").write_text(markdown(summary, args.rounds, meta))
            print(f"[toy_evolution] {variant} seed {seed}: "
                  + (results[-1].get("error") or f"{results[-1]['wall_s']:.0f} s"), flush=True)
    print((args.out / "toy_evolution.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
