"""One runner for the benchmarks: kernels, image pipeline, labelling, training step -> rows.csv, rows.json, summary.md.

    python -m benchmarks [--quick] [--only kernels,image,labelling,train] [--out DIR]   (from the checkout's root)

`main(argv) -> int` is the entry point (`evoquality bench` calls it in a source checkout: benchmarks/ is not in the
wheel). Every benchmark is a module with one interface (benchmarks/_rows.py): `PROVIDERS`, `run(argv) -> rows`,
`main(argv)`; this runner calls each module's `run` with the sizes below, in this process, with its anchor measured
side by side, and every row carries op, provider, shape, p20/p50/p80 in ms, the anchor and `ratio_to_anchor` =
anchor p50 / this p50 (> 1: faster than the anchor), throughput where natural, the share of the step for training
phases, and the device, library versions and commit. A benchmark that cannot run here (no CUDA, extension not
built) is a "skipped" row, one that raises a "failed" row, both with the reason; the others still run. Files land
in DIR (default benchmarks/results/<date>-<device>[-quick]/), rewritten after every benchmark: rows.csv, rows.json,
summary.md, each module's own output under raw/<benchmark>/ and what it printed in logs/<benchmark>.log.

--quick uses small sizes (a few minutes on two CPU cores); the full sizes are each module's defaults, on CUDA the
3B architecture for labelling and the training step. The kernel benchmarks run their CPU providers here (the CPU
targets); on CUDA, gpu_kernels.py adds the compiled Triton kernels' checks and GPU timings through the same modules.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib
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
from _rows import FIELDS, Skip, row  # noqa: E402
from _timing import LIBRARIES, REPO, cpu_model, device_name, git_commit, versions  # noqa: E402

GROUPS = ("kernels", "image", "labelling", "train")


@dataclass(frozen=True)
class Bench:
    name: str
    group: str  # one of GROUPS
    module: str  # a module in benchmarks/ with run(argv) -> rows
    argv: Callable[[bool], list[str]]  # quick -> the module's arguments (the runner adds --out)
    uses_cuda: bool = False  # runs on the GPU when there is one (else on the CPU)


def _win_matrix(quick: bool) -> list[str]:
    return ["--images", "1000" if quick else "2000", "--samples", "32", "--pairs", "20000", "--reps", "3",
            "--providers", "torch"]


def _labelling(quick: bool) -> list[str]:
    if quick:
        return ["--config", "tiny", "--pairs", "2", "--votes", "16", "--max-new-tokens", "16", "--image-side", "224",
                "--repeats", "5"]
    return ["--config", "3b"] if torch.cuda.is_available() else []


# The CPU sizes: the targets' shapes (docs/benchmarks.md); --quick times the fidelity loop on 1/8 of its triples.
BENCHES = (
    Bench("fidelity", "kernels", "bench_fidelity", lambda quick: [
        "--images", "256", "--rollouts", "32", "--partners", "8", "--providers", "torch,loop",
        *(["--loop-triples", str(256 * 32 * 8 // 8)] if quick else [])]),
    Bench("group_advantage", "kernels", "bench_group_advantage",
          lambda quick: ["--images", "512", "--rollouts", "32", "--providers", "torch,trl"]),
    Bench("vote_tally", "kernels", "bench_vote_tally",
          lambda quick: ["--pairs", "20000", "--votes", "32", "--providers", "torch,loop"]),
    Bench("win_matrix", "kernels", "bench_win_matrix", _win_matrix),
    Bench("gpu_kernels", "kernels", "gpu_kernels", lambda quick: ["--budget-s", "40" if quick else "100"],
          uses_cuda=True),
    Bench("image_pipeline", "image", "bench_image_pipeline", lambda quick: [
        "--threads", "1", "--rounds", "5", "--cases", "jpeg-1024x768-1M", "jpeg-3000x2000-200k"] if quick else []),
    Bench("normalize_patchify", "image", "bench_normalize_patchify",
          lambda quick: ["--repeats", "5"] if quick else []),
    # Without --before its "before" rows are skipped rows: that side needs a checkout of the old code.
    Bench("image_path", "image", "bench_image_path",
          lambda quick: ["--cases", "toy", "--rounds", "1", "--reps", "2"] if quick else []),
    Bench("labelling", "labelling", "bench_labelling", _labelling, uses_cuda=True),
    Bench("train_step", "train", "bench_train_step", lambda quick: [
        "--config", "tiny", "--images", "4", "--rollouts", "4", "--max-new-tokens", "16", "--image-size", "56",
        "--steps", "3"] if quick else [], uses_cuda=True),
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
        argv = [*bench.argv(quick), "--out", str(out / "raw" / bench.name)]
        log = out / "logs" / f"{bench.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        threads, t0 = torch.get_num_threads(), time.perf_counter()
        try:
            with _output_to(log):
                got, status = importlib.import_module(bench.module).run(argv), "ok"
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


def main(argv: Optional[list[str]] = None) -> int:
    """The entry point (`python -m benchmarks`, `evoquality bench`): the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))
