"""One runner for the benchmarks: kernels, image pipeline, labelling, training step -> rows.csv, rows.json, summary.md.

    python -m benchmarks [--quick] [--only kernels,image,labelling,train] [--out DIR]
    evoquality bench     [the same options]              (from a source checkout: benchmarks/ is not in the wheel)

Each benchmark runs in this process through its script's own functions (every script stays runnable alone) with
its anchor measured side by side, and its result becomes rows: op, provider, shape, p20/p50/p80 in ms, the anchor
and `ratio_to_anchor` = anchor p50 / this p50 (> 1: faster than the anchor), throughput where natural, the share of
the step for training phases, and the device, library versions and commit. A benchmark that cannot run here (no
CUDA, extension not built) is a "skipped" row, one that raises a "failed" row, both with the reason; the others
still run. Files land in DIR (default benchmarks/results/<date>-<device>[-quick]/), rewritten after every
benchmark: rows.csv, rows.json, summary.md, each script's own output under raw/<benchmark>/ and what it printed in
logs/<benchmark>.log.

--quick uses small sizes (a few minutes on two CPU cores); the full sizes are each script's defaults, on CUDA the
3B architecture for labelling and the training step. Anchors: the ancestor's per-pair reward loop (fidelity), TRL
1.16's inline group advantages, a per-pair Python tally loop, the transformers Qwen2-VL image processors (the
fastest one available is the anchor), K separate prefills for labelling votes.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import re
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

# Benchmarks never download: the tiny model and the processors are built offline.
for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_name, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import torch  # noqa: E402
from _timing import LIBRARIES, REPO, cpu_model, device_name, git_commit, versions  # noqa: E402

GROUPS = ("kernels", "image", "labelling", "train")
FIELDS = ("benchmark", "op", "provider", "shape", "status", "p20_ms", "p50_ms", "p80_ms", "reps", "anchor",
          "ratio_to_anchor", "throughput", "throughput_unit", "share_of_step", "note", "device", *LIBRARIES, "commit")


class Skip(Exception):
    """This benchmark cannot run here (missing hardware or extension): a "skipped" row with the reason."""


@dataclass(frozen=True)
class Context:
    quick: bool
    raw: Path  # this benchmark's own output folder


@dataclass(frozen=True)
class Bench:
    name: str
    group: str  # one of GROUPS
    run: Callable[[Context], list[dict]]
    uses_cuda: bool = False  # runs on the GPU when there is one (else on the CPU)


def row(op: str, provider: str, shape: str, timing: Optional[dict] = None, *, status: str = "ok", **fields) -> dict:
    """A result row; `timing` is in _timing's form ({p20_s, p50_s, p80_s, reps}, seconds), reported in ms."""
    out = dict.fromkeys(FIELDS)
    out.update({"note": "", **fields}, op=op, provider=provider, shape=shape, status=status)
    if timing is not None:
        out.update({f"p{q}_ms": timing[f"p{q}_s"] * 1e3 for q in (20, 50, 80)}, reps=timing.get("reps"))
    return out


def side_by_side(op: str, shape: str, timings: dict[str, dict], *, anchor: Optional[str], work: float = 0,
                 unit: Optional[str] = None, notes: Optional[dict] = None) -> list[dict]:
    """One row per provider of `timings` (provider -> seconds per call), each with its ratio to the `anchor`
    provider measured in the same run; `work` items per call give the throughput in `unit` at p50."""
    notes = notes or {}
    base = timings[anchor]["p50_s"] if anchor is not None else None
    return [row(op, name, shape, t, anchor=anchor, ratio_to_anchor=base / t["p50_s"] if base else None,
                throughput=work / t["p50_s"] if work else None, throughput_unit=unit if work else None,
                note=notes.get(name, ""))
            for name, t in timings.items()]


def spread(p20: float, p50: float, p80: float, reps: Optional[int] = None) -> dict:
    """A timing in _timing's form from percentiles in seconds."""
    return {"p20_s": p20, "p50_s": p50, "p80_s": p80, "reps": reps}


# ------------------------------------------------------------------------------------------------------ kernels
def fidelity(ctx: Context) -> list[dict]:
    import bench_fidelity

    b, g, p = 256, 32, 8  # the CPU target shape (docs/benchmarks.md); --quick times the loop on 1/8 of its triples
    argv = ["--images", str(b), "--rollouts", str(g), "--partners", str(p), "--out", str(ctx.raw)]
    r = bench_fidelity.main(argv + (["--loop-triples", str(b * g * p // 8)] if ctx.quick else []))
    loop = r["ancestor_loop"]
    note = (f"extrapolated from {loop['measured_triples']} of {loop['total_triples']} triples"
            if loop["extrapolated"] else "")
    return side_by_side("fidelity_reward", f"B={b} G={g} partners={p}",
                        {"torch-reference": r["reference"], "ancestor-loop": loop}, anchor="ancestor-loop",
                        work=b * g, unit="rewards/s", notes={"torch-reference": "target >= 1000x the loop",
                                                             "ancestor-loop": note})


def group_advantage(ctx: Context) -> list[dict]:
    import bench_group_advantage

    b, g = 512, 32
    r = bench_group_advantage.main(["--images", str(b), "--rollouts", str(g), "--out", str(ctx.raw)])
    return side_by_side("group_advantages", f"B={b} G={g}", {"torch-reference": r["reference"],
                                                             "trl-inline": r["trl_inline"]},
                        anchor="trl-inline", work=b * g, unit="advantages/s")


def vote_tally(ctx: Context) -> list[dict]:
    import bench_vote_tally

    m, k = 20000, 32  # the paper's round
    r = bench_vote_tally.main(["--pairs", str(m), "--votes", str(k), "--out", str(ctx.raw)])
    return side_by_side("vote_tally", f"M={m} K={k}", {"torch-reference": r["reference"],
                                                       "python-loop": r["python_loop"]},
                        anchor="python-loop", work=m * k, unit="votes/s")


def win_matrix(ctx: Context) -> list[dict]:
    import bench_win_matrix

    n, k, m = (1000, 32, 20000) if ctx.quick else (2000, 32, 20000)
    r = bench_win_matrix.main(["--images", str(n), "--samples", str(k), "--pairs", str(m), "--reps", "3",
                               "--out", str(ctx.raw)])
    # No anchor: nothing older computes the all-pairs matrix; its absolute target (docs/benchmarks.md) is the yardstick.
    return [*side_by_side("win_matrix", f"N={n} K={k} all pairs", {"torch-reference": r["all_pairs"]}, anchor=None,
                          work=n * n, unit="pairs/s", notes={"torch-reference": "target < 2 s at N=2000 K=32"}),
            *side_by_side("win_matrix(pairs)", f"N={n} K={k} M={m}", {"torch-reference": r["pair_list"]},
                          anchor=None, work=m, unit="pairs/s")]


def kernel_rows(report: dict) -> list[dict]:
    """Rows of benchmarks/gpu_kernels.py's kernels.json: a failed row per failed correctness check, then every
    timing with its providers (triton, torch reference, ancestor loop) and the ratio to the slowest one timed
    (the ancestor loop where there is one, else the torch reference)."""
    out = [row(c["op"], "triton", f"{c['shape']} {c.get('dtype', '')}".strip(), status="failed",
               note=c.get("error", "correctness check failed")) for c in report["checks"] if not c["ok"]]
    for t in report["timings"]:
        shape = " ".join(f"{k}={t[k]}" for k in ("B", "G", "partners", "N", "K", "M") if k in t)
        if "skipped" in t:
            out.append(row(t["op"], "triton", shape, status="skipped", note=t["skipped"]))
            continue
        timings = {name: t[key] for key, name in (("triton", "triton"), ("torch", "torch-reference"),
                                                  ("loop", "ancestor-loop")) if t.get(key)}
        anchor = "ancestor-loop" if "ancestor-loop" in timings else ("torch-reference" if "torch-reference" in
                                                                     timings else None)
        notes = {}
        if "met" in t:
            notes["triton"] = f"target {'met' if t['met'] else 'MISSED'}"
        if t.get("loop", {}).get("extrapolated"):
            notes["ancestor-loop"] = (f"extrapolated from {t['loop']['measured_triples']} of "
                                      f"{t['loop']['total_triples']} triples")
        out += side_by_side(t["op"], shape, timings, anchor=anchor, notes=notes)
    return out


def gpu_kernels(ctx: Context) -> list[dict]:
    if not torch.cuda.is_available():
        raise Skip("no CUDA device: the compiled Triton kernels need one (the CPU rows time the torch references)")
    import gpu_kernels as script

    status = script.main(argparse.Namespace(out=ctx.raw, smoke=False, budget_s=40.0 if ctx.quick else 100.0))
    if status == 2:
        raise Skip("gpu_kernels.py found no CUDA device")
    return kernel_rows(json.loads((ctx.raw / "kernels.json").read_text()))


# ------------------------------------------------------------------------------------------------------ image
def image_rows(report: dict) -> list[dict]:
    """Rows of bench_image_pipeline's report: per case and thread count, every contender in ms per image (from
    its images/s percentiles) against the fastest transformers processor of that case."""
    out = []
    for c in report["cases"]:
        rates = c["images_per_s"]
        anchor = max((k for k in rates if k.startswith("transformers")), key=lambda k: rates[k]["p50"])
        shape = f"{c['case']} batch={c['batch']} threads={c['threads']}"
        timings = {k: spread(1 / r["p80"], 1 / r["p50"], 1 / r["p20"], c["rounds"]) for k, r in rates.items()}
        exact = "bit-identical to transformers: " + ("yes" if c["bit_identical_to_transformers"] else "NO")
        out += side_by_side("image_preprocess", shape, timings, anchor=anchor, work=1, unit="images/s",
                            notes={"native-exact": exact})
        out += [row("image_preprocess", k, shape, status="skipped", note=why) for k, why in c["unavailable"].items()]
    patchify = report.get("patchify_ms_per_output_mp", {})
    for mode in ("fresh", "reused_out"):
        if f"{mode}_wall_ms_per_mp" in patchify:
            ms = patchify[f"{mode}_wall_ms_per_mp"]
            out.append(row("normalize_patchify", "native", f"4x 812x1204, {mode} output, 1 thread",
                           spread(ms["p20"] / 1e3, ms["p50"] / 1e3, ms["p80"] / 1e3),
                           note="ms per output megapixel (wall); target <= 3"))
    out += [row("image_preprocess", "", s.split(":")[0], status="skipped", note=s.split(": ", 1)[-1])
            for s in report.get("skipped", [])]
    return out


def image_pipeline(ctx: Context) -> list[dict]:
    import bench_image_pipeline

    import evoquality.io as eio

    if not eio.native_available():
        raise Skip("evoquality._native is not built (`pip install -e .` builds it)")
    argv = ["--out", str(ctx.raw)]
    if ctx.quick:
        argv += ["--threads", "1", "--rounds", "5", "--cases", "jpeg-1024x768-1M", "jpeg-3000x2000-200k"]
    return image_rows(bench_image_pipeline.run(bench_image_pipeline.build_parser().parse_args(argv)))


# ------------------------------------------------------------------------------------------------------ labelling
def labelling(ctx: Context) -> list[dict]:
    import bench_labelling

    argv = ["--out", str(ctx.raw)]
    if ctx.quick:
        argv += ["--config", "tiny", "--pairs", "2", "--votes", "16", "--max-new-tokens", "16", "--image-side", "224",
                 "--repeats", "5"]
    elif torch.cuda.is_available():
        argv += ["--config", "3b"]
    bench_labelling.main(argv)
    r = json.loads((ctx.raw / "bench_labelling.json").read_text())
    if not r.get("paths"):
        raise RuntimeError("bench_labelling wrote no timings")
    shape = (f"{r['model']}: {r['pairs']} pairs x K={r['votes']}, {r['max_new_tokens']} new tokens, "
             f"{r['image_side']} px")
    timings = {name: spread(p["seconds_p20"], p["seconds_p50"], p["seconds_p80"], len(p["seconds_all"]))
               for name, p in r["paths"].items()}
    return side_by_side("labelling_votes", shape, {"one-prefill-per-order": timings["shared"],
                                                   "k-prefills": timings["separate"]},
                        anchor="k-prefills", work=r["pairs"] * r["votes"], unit="votes/s",
                        notes={"one-prefill-per-order": "2 prompts per pair, n = K/2 samples each; target >= 3x",
                               "k-prefills": "K prompts per pair, one sample each (the ancestor's way)"})


# ------------------------------------------------------------------------------------------------------ training
# What each measured phase holds (evoquality.training.timing.PHASES), in plain words where they differ.
PHASE_NOTES = {
    "preprocess": "preprocessing: image decode + processor + prompt tokenisation",
    "generation": "rollout sampling",
    "weight_sync": "vLLM weight push (0 without vLLM)",
    "reward": "score parsing + fused fidelity reward and group advantages",
    "advantage": "hand-over of the fused advantages to TRL",
    "logprob_forward": "reference/old log-prob forwards (model)",
    "forward_backward": "policy forward + loss + backward",
    "optimizer": "AdamW step",
    "other": "batch slicing, callbacks",
    "total": "step wall time",
}


def train_rows(r: dict) -> list[dict]:
    """Rows of bench_train_step's result: one per phase with its share of the step (p50 / total p50), and the
    non-model time (evoquality.training.timing.NON_MODEL_PHASES) with its share."""
    from evoquality.training.timing import NON_MODEL_PHASES

    def timing(p: dict) -> dict:
        return spread(p["p20"], p["p50"], p["p80"], p["n"])

    shape = (f"{r['config']}: {r['images']} images x {r['rollouts_per_image']} rollouts, {r['max_new_tokens']} new "
             f"tokens, {r['image_size']} px")
    total = r["phases_s"]["total"]["p50"] or 1.0
    throughput = {"total": (r["tokens_per_s"]["p50"], "tokens/s"),
                  "generation": (r["generated_tokens_per_s"]["p50"], "generated tokens/s")}
    out = []
    for phase, p in r["phases_s"].items():
        tput, unit = throughput.get(phase, (None, None))
        out.append(row(f"train_step/{phase}", "FidelityGRPOTrainer", shape, timing(p), share_of_step=p["p50"] / total,
                       throughput=tput, throughput_unit=unit, note=PHASE_NOTES.get(phase, "")))
    share = r["non_model_share"]
    out.append(row("train_step/non_model", "FidelityGRPOTrainer", shape, timing(r["non_model_s"]),
                   share_of_step=share["p50"],
                   note=f"{' + '.join(NON_MODEL_PHASES)} (the rest runs or updates the model); share p20/p50/p80 "
                        f"{share['p20']:.3f} / {share['p50']:.3f} / {share['p80']:.3f}"))
    return out


def train_step(ctx: Context) -> list[dict]:
    import bench_train_step

    argv = ["--out", str(ctx.raw)]
    if ctx.quick:
        argv += ["--config", "tiny", "--images", "4", "--rollouts", "4", "--max-new-tokens", "16", "--image-size",
                 "56", "--steps", "3"]
    return train_rows(bench_train_step.run(bench_train_step.build_parser().parse_args(argv)))


BENCHES = (
    Bench("fidelity", "kernels", fidelity),
    Bench("group_advantage", "kernels", group_advantage),
    Bench("vote_tally", "kernels", vote_tally),
    Bench("win_matrix", "kernels", win_matrix),
    Bench("gpu_kernels", "kernels", gpu_kernels, uses_cuda=True),
    Bench("image_pipeline", "image", image_pipeline),
    Bench("labelling", "labelling", labelling, uses_cuda=True),
    Bench("train_step", "train", train_step, uses_cuda=True),
)


# ------------------------------------------------------------------------------------------------------ runner
@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Everything written to stdout/stderr meanwhile goes to `path`, so the console keeps one progress line per
    benchmark: file descriptors 1 and 2 are pointed at the file (native code, handlers holding the process
    streams), and sys.stdout/sys.stderr at the process streams (they may be replaced, e.g. under pytest)."""
    streams = [s for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__) if s is not None]
    for stream in streams:
        stream.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            with contextlib.redirect_stdout(sys.__stdout__ or sys.stdout), \
                    contextlib.redirect_stderr(sys.__stderr__ or sys.stderr):
                yield
        finally:
            for stream in streams:
                stream.flush()
            for fd, old in zip((1, 2), saved):
                os.dup2(old, fd)
                os.close(old)


def run_benches(benches, *, quick: bool, out: Path, run_info: dict) -> list[dict]:
    """Run `benches` in order, writing DIR's files after each; returns every row."""
    env = {**versions(), "commit": git_commit()}
    rows: list[dict] = []
    started = time.perf_counter()
    for i, bench in enumerate(benches, 1):
        label = f"[{i}/{len(benches)}] {bench.group}/{bench.name}"
        print(f"{label}: started", flush=True)
        ctx = Context(quick=quick, raw=out / "raw" / bench.name)
        log = out / "logs" / f"{bench.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        threads, t0 = torch.get_num_threads(), time.perf_counter()
        try:
            with _output_to(log):
                got, status = bench.run(ctx), "ok"
        except Skip as e:
            got, status = [row(bench.name, "", "", status="skipped", note=str(e))], f"skipped: {e}"
        except (Exception, SystemExit) as e:  # record it and go on: one failure must not hide the others
            with open(log, "a") as f:
                f.write(traceback.format_exc())
            reason = (f"{type(e).__name__}: {e}".strip().splitlines() or [""])[0][:300]
            got, status = [row(bench.name, "", "", status="failed", note=reason)], f"FAILED: {reason} (see {log})"
        device = device_name("cuda" if bench.uses_cuda and torch.cuda.is_available() else "cpu")
        torch.set_num_threads(threads)  # the kernel scripts pin one thread; the next benchmark starts as we did
        for r in got:
            r.update(benchmark=f"{bench.group}/{bench.name}", **{k: r.get(k) or v for k, v in
                                                                 {"device": device, **env}.items()})
        rows += got
        print(f"{label}: {status}, {len(got)} rows, {time.perf_counter() - t0:.1f} s", flush=True)
        write(out, rows, {**run_info, "wall_s": round(time.perf_counter() - started, 1)})
    return rows


def write(out: Path, rows: list[dict], run_info: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "rows.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    (out / "rows.json").write_text(json.dumps({"run": run_info, "rows": rows}, indent=1) + "\n")
    (out / "summary.md").write_text(summary(rows, run_info))


def _num(x: Optional[float]) -> str:
    return "" if x is None else f"{x:.4g}"


def _ratio(x: float) -> str:
    return f"{x:,.0f}x" if x >= 100 else f"{x:.3g}x"


def _rate(x: float, unit: str) -> str:
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= scale:
            return f"{x / scale:.3g} {prefix} {unit}"
    return f"{x:.3g} {unit}"


def summary(rows: list[dict], run_info: dict) -> str:
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "skipped", "failed")}
    libs = ", ".join(f"{k} {run_info['versions'][k]}" for k in LIBRARIES)
    lines = [f"# EvoQuality benchmarks{' (quick run)' if run_info['quick'] else ''}", "",
             f"- commit `{run_info['commit']}`, started {run_info['started_utc']}, wall time "
             f"{run_info.get('wall_s', 0):.0f} s; `{run_info['command']}`",
             f"- host: {run_info['host']}", f"- versions: {libs}",
             f"- rows: {counts['ok']} ok, {counts['skipped']} skipped, {counts['failed']} failed",
             "- times are per call, p20 / p50 / p80 in ms; `vs anchor` = anchor p50 / this p50, both measured in "
             "this run (> 1: faster than the anchor)", ""]
    optional = (("vs anchor", "ratio_to_anchor", lambda r: _ratio(r["ratio_to_anchor"])),
                ("throughput (p50)", "throughput", lambda r: _rate(r["throughput"], r["throughput_unit"])),
                ("share of step", "share_of_step", lambda r: f"{r['share_of_step']:.1%}"))
    for group in dict.fromkeys(r["benchmark"].split("/")[0] for r in rows):
        mine = [r for r in rows if r["benchmark"].startswith(group + "/")]
        devices = "; ".join(dict.fromkeys(r["device"] for r in mine if r["status"] == "ok")) or "nothing ran"
        cols = [c for c in optional if any(r[c[1]] is not None for r in mine)]
        lines += [f"## {group} — {devices}", "",
                  "| op | provider | shape | p20 / p50 / p80 ms | " + "".join(f"{c[0]} | " for c in cols) + "note |",
                  "|---|---|---|---|" + "---|" * len(cols) + "---|"]
        for r in mine:
            ms = " / ".join(_num(r[f"p{q}_ms"]) for q in (20, 50, 80)) if r["p50_ms"] is not None else ""
            note = r["note"] if r["status"] == "ok" else f"**{r['status']}**: {r['note']}"
            cells = [r["op"], r["provider"], r["shape"], ms,
                     *(fmt(r) if r[key] is not None else "" for _, key, fmt in cols), note.replace("|", "/")]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def select(only: Optional[str]) -> list[Bench]:
    """The benchmarks named by --only: groups and/or benchmark names, comma-separated (None: all)."""
    if not only:
        return list(BENCHES)
    names = [n.strip() for n in only.split(",") if n.strip()]
    known = set(GROUPS) | {b.name for b in BENCHES}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"--only must name groups ({', '.join(GROUPS)}) or benchmarks "
                         f"({', '.join(b.name for b in BENCHES)}), got {only!r}")
    return [b for b in BENCHES if b.group in names or b.name in names]


def default_out(quick: bool) -> Path:
    if torch.cuda.is_available():
        slug = re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(0).lower().replace("nvidia", "")).strip("-")
    else:
        slug = "cpu"
    return REPO / "benchmarks" / "results" / f"{time.strftime('%Y-%m-%d')}-{slug}{'-quick' if quick else ''}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="small sizes: a few minutes on two CPU cores")
    parser.add_argument("--only", default=None,
                        help=f"comma-separated groups ({','.join(GROUPS)}) or benchmark names (default: all)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for rows.csv, rows.json, summary.md, raw/ and logs/ "
                             "(default: benchmarks/results/<date>-<device>[-quick]/)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")


def run(args: argparse.Namespace) -> int:
    if args.list:
        for b in BENCHES:
            print(f"{b.group:10s} {b.name}")
        return 0
    try:
        benches = select(args.only)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    out = args.out or default_out(args.quick)
    host = f"{cpu_model()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads; CUDA: " + (
        torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
    shown = out.resolve().relative_to(REPO) if out.resolve().is_relative_to(REPO) else out  # no home paths in a report
    options = [*(["--quick"] if args.quick else []), *(["--only", args.only] if args.only else []), "--out", str(shown)]
    run_info = {"quick": args.quick, "command": " ".join(["python -m benchmarks", *options]), "host": host,
                "commit": git_commit(), "versions": versions(),
                "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(f"{len(benches)} benchmarks{' (quick)' if args.quick else ''} -> {out}", flush=True)
    rows = run_benches(benches, quick=args.quick, out=out, run_info=run_info)
    failed = sum(r["status"] == "failed" for r in rows)
    print(f"done: {len(rows)} rows ({failed} failed) in {out}", flush=True)
    return 1 if failed else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))
