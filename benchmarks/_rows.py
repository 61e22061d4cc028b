"""The one interface every `bench_<op>.py` follows, and the row every benchmark number travels in.

Each benchmark module exposes
    PROVIDERS                                     the implementations it can time, anchor included
    ANCHOR                                        the provider the others are compared with; None where it is
                                                  chosen per case or there is none (an absolute target)
    run(argv: list[str] | None = None) -> rows    measure what argv asks for; one row per (op, shape, provider)
    main(argv=None) -> int                        run, print the rows as a table; exit status 1 when a row failed,
                                                  2 when the benchmark cannot run here (run raised Skip)
and `build_parser()`, whose options `python benchmarks/bench_<op>.py --help` lists. The kernel benchmarks share
`--providers`, `--device`, `--reps` and `--out` (add_kernel_arguments).

A row (`FIELDS`) holds op, provider, shape, status (ok / skipped / failed) with a note saying why, p20/p50/p80 ms
per call, the anchor and ratio_to_anchor = anchor p50 / this p50 (> 1: faster), throughput, and the device,
library versions and commit it was measured with. A provider that cannot run here is a "skipped" row with the
reason — never a made-up number.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Optional

from _timing import LIBRARIES, device_name, git_commit, time_fn, versions

FIELDS = ("benchmark", "op", "provider", "shape", "status", "p20_ms", "p50_ms", "p80_ms", "reps", "anchor",
          "ratio_to_anchor", "throughput", "throughput_unit", "share_of_step", "note", "device", *LIBRARIES, "commit")


class Skip(Exception):
    """This benchmark cannot run here (missing hardware or extension): a "skipped" row with the reason."""


def row(op: str, provider: str, shape: str, timing: Optional[dict] = None, *, status: str = "ok", **fields) -> dict:
    """A result row; `timing` is in _timing's form ({p20_s, p50_s, p80_s, reps}, seconds), reported in ms."""
    out = dict.fromkeys(FIELDS)
    out.update({"note": "", **fields}, op=op, provider=provider, shape=shape, status=status)
    if timing is not None:
        out.update({f"p{q}_ms": timing[f"p{q}_s"] * 1e3 for q in (20, 50, 80)}, reps=timing.get("reps"))
    return out


def spread(p20: float, p50: float, p80: float, reps: Optional[int] = None) -> dict:
    """A timing in _timing's form from percentiles in seconds."""
    return {"p20_s": p20, "p50_s": p50, "p80_s": p80, "reps": reps}


def side_by_side(op: str, shape: str, timings: dict[str, dict], *, anchor: Optional[str], work: float = 0,
                 unit: Optional[str] = None, notes: Optional[dict] = None) -> list[dict]:
    """One row per provider of `timings` (provider -> seconds per call), each with its ratio to the `anchor`
    provider measured in the same run; `work` items per call give the throughput in `unit` at p50."""
    notes = notes or {}
    # A ratio needs the anchor and something beside it: alone, the anchor's 1.0 would say nothing.
    base = timings[anchor]["p50_s"] if anchor in timings and len(timings) > 1 else None
    return [row(op, name, shape, t, anchor=anchor if base else None,
                ratio_to_anchor=base / t["p50_s"] if base else None,
                throughput=work / t["p50_s"] if work else None, throughput_unit=unit if work else None,
                note=notes.get(name, ""))
            for name, t in timings.items()]


def stamp(rows: list[dict], device) -> list[dict]:
    """Fill each row's device, versions and commit where it has none."""
    env = {"device": device_name(device), **versions(), "commit": git_commit()}
    for r in rows:
        r.update({k: r.get(k) or v for k, v in env.items()})
    return rows


# ------------------------------------------------------------------------------------------- kernel benchmarks
def add_kernel_arguments(ap: argparse.ArgumentParser, providers: tuple[str, ...], *, reps: int) -> None:
    ap.add_argument("--providers", default=None,
                    help=f"comma-separated, from {','.join(providers)} (default: all; on CPU, triton is a skipped "
                         "row unless named here and TRITON_INTERPRET=1 is set)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu: the CPU targets)")
    ap.add_argument("--reps", type=int, default=reps, help="timed calls per provider")
    ap.add_argument("--max-seconds", type=float, default=10.0, help="stop a provider's timing early (>= 3 reps)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1: stable on a shared machine, and the loops are serial anyway)")
    ap.add_argument("--out", type=Path, default=None, help="folder for bench_<op>.json (the rows)")


def providers_of(args: argparse.Namespace, allowed: tuple[str, ...]) -> tuple[list[str], bool]:
    """The providers --providers names, in PROVIDERS order, and whether they were named explicitly."""
    if args.providers is None:
        return list(allowed), False
    names = [p.strip() for p in args.providers.split(",") if p.strip()]
    unknown = [p for p in names if p not in allowed]
    if unknown or not names:
        raise SystemExit(f"--providers must name some of {', '.join(allowed)}, got {args.providers!r}")
    return [p for p in allowed if p in names], True


def triton_unavailable(device, explicit: bool) -> Optional[str]:
    """Why the triton provider cannot give a kernel time on `device` (None: it can run).

    On CPU the Triton kernels only run through the interpreter, which checks the code path but times Python; so it
    runs only when asked for by name with TRITON_INTERPRET=1 set before the kernels were imported."""
    from evoquality import _backend

    if not _backend.triton_available():
        return "triton is not installed (the `gpu` extra)"
    if str(device).startswith("cuda"):
        return None
    if explicit and _backend.triton_interpret():
        return None
    return ("no CUDA device: compiled Triton needs one (--device cpu --providers triton with TRITON_INTERPRET=1 "
            "runs the interpreter, which times Python, not the kernel)")


INTERPRETER_NOTE = "Triton interpreter on CPU: checks the path, the time is not a kernel time"


def provider_timer(call: Callable[[], object], provider: Optional[str], args: argparse.Namespace,
                   **time_kw) -> Callable[[], dict]:
    """A timer for `compare`: `call()` with its op dispatched to `provider` (None: the dispatcher's own choice),
    timed by `time_fn` with the kernel arguments' device, reps and time budget."""
    from evoquality import _backend

    def forced():
        with _backend.force_provider(provider):
            return call()
    return lambda: time_fn(forced, device=args.device, reps=args.reps, max_seconds=args.max_seconds, **time_kw)


def compare(op: str, shape: str, timers: dict[str, Callable[[], dict]], *, providers: list[str], explicit: bool,
            device, anchor: Optional[str], work: float = 0, unit: Optional[str] = None,
            notes: Optional[dict] = None) -> list[dict]:
    """Time each of `providers` (timers: provider -> a call returning _timing's dict) side by side, in order;
    a triton provider that cannot run here becomes a skipped row with the reason."""
    notes = dict(notes or {})
    timings, skipped = {}, {}
    for name in providers:
        reason = triton_unavailable(device, explicit) if name == "triton" else None
        if reason:
            skipped[name] = reason
            continue
        if name == "triton" and not str(device).startswith("cuda"):
            notes["triton"] = INTERPRETER_NOTE
        timings[name] = timers[name]()
    timed = {r["provider"]: r for r in side_by_side(op, shape, timings, anchor=anchor, work=work, unit=unit,
                                                    notes=notes)}
    return [timed[p] if p in timed else row(op, p, shape, status="skipped", note=skipped[p]) for p in providers]


def save(out: Optional[Path], name: str, rows: list[dict], **extra) -> None:
    """Write OUT/<name>.json: the rows and whatever else the benchmark records."""
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.json").write_text(json.dumps({**extra, "rows": rows}, indent=1, default=str) + "\n")


# --------------------------------------------------------------------------------------------------- console
def _num(x: Optional[float]) -> str:
    return "" if x is None else f"{x:.4g}"


def table(rows: list[dict]) -> str:
    """The rows as a markdown table (what `main` prints)."""
    lines = ["| op | provider | shape | p20 / p50 / p80 ms | vs anchor | throughput | note |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ms = " / ".join(_num(r[f"p{q}_ms"]) for q in (20, 50, 80)) if r["p50_ms"] is not None else ""
        ratio = f"{r['ratio_to_anchor']:.3g}x vs {r['anchor']}" if r["ratio_to_anchor"] is not None else ""
        tput = f"{r['throughput']:.4g} {r['throughput_unit']}" if r["throughput"] is not None else ""
        note = r["note"] if r["status"] == "ok" else f"**{r['status']}**: {r['note']}"
        lines.append("| " + " | ".join([r["op"], r["provider"], r["shape"], ms, ratio, tput,
                                         note.replace("|", "/")]) + " |")
    if rows:
        lines.append(f"\n{rows[0]['device']} @ {rows[0]['commit']}")
    return "\n".join(lines)


def main_of(run: Callable[[Optional[list[str]]], list[dict]], argv: Optional[list[str]] = None) -> int:
    """A module's `main`: run, print the table; exit status 1 when a row failed, 2 when it cannot run here."""
    try:
        rows = run(argv)
    except Skip as e:
        print(f"cannot run here: {e}", file=sys.stderr)
        return 2
    print(table(rows))
    return 1 if any(r["status"] == "failed" for r in rows) else 0
