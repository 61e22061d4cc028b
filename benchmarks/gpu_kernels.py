"""GPU driver for the numeric ops: compiled Triton kernels checked against the float64 references, then each op's
bench_<op>.py run at the GPU sizes with its providers triton, torch (the reference on the same GPU) and the loop.

    python benchmarks/gpu_kernels.py --out DIR            # on a CUDA machine; < 2 minutes on one H100
    python benchmarks/gpu_kernels.py --out DIR --smoke    # tiny sizes on CPU through the Triton interpreter:
                                                          # exercises this script end to end, times nothing real

Writes DIR/kernels.json (the checks, and the timing rows of the bench modules with device, versions, commit) and
DIR/kernels.md (the tables). `run(argv)` returns the rows (a failed correctness check is a failed row), as every
bench module's does. Exit status 1 when a correctness check fails, 2 without CUDA (and no --smoke), 0 otherwise;
target misses are reported, not fatal.
Checks: fp32 and bf16 inputs; the float64 reference is computed from the same (upcast) input values and judged by
`evoquality.ops.tolerances` (no worse than 2x the fp32 PyTorch reference + a floor; vote counts exact).
Timings: p20/p50/p80 with CUDA events, launch overhead included (what a training step pays). The ancestor loop
does ~10 launches and a host sync per (image, rollout, partner) triple, so it is timed on a subset of images and
extrapolated linearly in the triple count; such rows say "extrapolated".
Targets (one H100): fused fidelity + advantages at 512 images x 32 rollouts x 8 partners <= 50 us and >= 10x
the torch reference; win matrix 10,000 images x 32 samples <= 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on CPU via TRITON_INTERPRET (script check)")
    ap.add_argument("--budget-s", type=float, default=100.0, help="skip remaining timings after this wall time")
    return ap


if __name__ == "__main__" and "--smoke" in sys.argv:
    os.environ["TRITON_INTERPRET"] = "1"  # before anything imports triton kernels

import torch  # noqa: E402

sys.path.insert(0, str(HERE))
from _rows import Skip, main_of, row  # noqa: E402
from _timing import environment, fmt_s  # noqa: E402
from bench_fidelity import make_case  # noqa: E402

from evoquality import _backend  # noqa: E402
from evoquality.ops.fidelity import fidelity_advantages, fidelity_advantages_ref  # noqa: E402
from evoquality.ops.group_advantage import group_advantages, group_advantages_ref  # noqa: E402
from evoquality.ops.tolerances import check_close  # noqa: E402
from evoquality.ops.vote_tally import vote_tally, vote_tally_ref  # noqa: E402
from evoquality.ops.win_matrix import win_matrix, win_matrix_ref  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def sizes(smoke: bool) -> dict:
    if smoke:
        return {
            "vote": [(37, 5)], "fid": [(7, 5, "dense"), (9, 8, 2)], "group": [(7, 5)], "win": [(21, 5)],
            "win_pairs": 13, "time_fid": [(16, 8, p) for p in (1, 8, "all")], "target_fid": (16, 8, 8),
            "time_vote": (64, 8), "time_group": (16, 8), "time_win": (33, 8), "time_win_pairs": 50, "loop_triples": 64,
            "reps": 3, "device": "cpu",
        }
    return {
        "vote": [(20001, 32), (999, 33)], "fid": [(7, 5, "dense"), (512, 32, 8), (1023, 8, 1), (257, 32, "all")],
        "group": [(512, 32), (1023, 7)], "win": [(1001, 32), (333, 17)], "win_pairs": 5000,
        "time_fid": [(b, g, p) for b in (64, 256, 1024) for g in (8, 32) for p in (1, 8, "all")],
        "target_fid": (512, 32, 8), "time_vote": (20000, 32), "time_group": (512, 32), "time_win": (10000, 32),
        "time_win_pairs": 20000, "loop_triples": 200, "reps": 50, "device": "cuda",
    }


def with_provider(provider, fn):
    def run():
        with _backend.force_provider(provider):
            return fn()
    return run


# ------------------------------------------------------------------------------------------------- correctness
def check_vote(device, m, k):
    gen = torch.Generator().manual_seed(m + k)
    votes = torch.randint(0, 2, (m, k), generator=gen).to(device)
    swapped = (torch.rand(m, k, generator=gen) < 0.5).to(device)
    valid = (torch.rand(m, k, generator=gen) < 0.9).to(device)
    rows = []
    for label in ("hard", "soft"):
        fast = with_provider("triton", lambda: vote_tally(votes, swapped, valid, label=label, min_margin=4))()
        ref = vote_tally_ref(votes, swapped, valid, label=label, min_margin=4)
        exact = all(torch.equal(a, b) for a, b in zip(fast, ref))
        rows.append({"op": "vote_tally", "shape": f"M={m} K={k}", "dtype": f"int64/{label}", "exact": exact,
                     "ok": exact})
    return rows


def fid_case(b, g, partners, dtype, device, seed):
    scores, p = make_case(b, g, b - 1 if partners == "all" else (8 if partners == "dense" else partners), seed=seed)
    gen = torch.Generator().manual_seed(seed)
    scores[torch.rand(b, g, generator=gen) < 0.05] = float("nan")
    valid = (torch.rand(b, g, generator=gen) < 0.95).to(device)
    if partners == "dense":
        mask, p_star = p.to_dense()
        return scores.to(dtype).to(device), (mask.to(device), p_star.to(device)), valid
    return scores.to(dtype).to(device), (p.to(device), None), valid


def check_fidelity(device, b, g, partners, dtype_name):
    scores, (p, p_star), valid = fid_case(b, g, partners, DTYPES[dtype_name], device, seed=b * 7 + g)
    rows = []
    for scale in ("group", "batch", "none"):
        fast = with_provider("triton", lambda: fidelity_advantages(scores, p, p_star, valid=valid, scale=scale))()
        ref = fidelity_advantages_ref(scores.double(), p, p_star, valid=valid, scale=scale)
        t32 = fidelity_advantages_ref(scores.float(), p, p_star, valid=valid, scale=scale)
        row = {"op": "fidelity_advantages", "shape": f"B={b} G={g} partners={partners} scale={scale}",
               "dtype": dtype_name}
        row["reward"] = check_close("reward", fast.rewards, ref.rewards, t32.rewards)
        # advantages judged on the kernel's own rewards (see tests/ops/test_fidelity.py for why)
        adv64 = group_advantages_ref(fast.rewards.double(), scale=scale)
        adv32 = group_advantages_ref(fast.rewards, scale=scale)
        row["advantage"] = check_close("advantage", fast.advantages, adv64, adv32)
        rows.append({**row, "ok": True})
    return rows


def check_group(device, b, g, dtype_name):
    gen = torch.Generator().manual_seed(b + g)
    r = torch.rand(b, g, generator=gen)
    r[torch.rand(b, g, generator=gen) < 0.1] = float("nan")
    r = r.to(DTYPES[dtype_name]).to(device)
    rows = []
    for scale in ("group", "batch", "none"):
        fast = with_provider("triton", lambda: group_advantages(r, scale=scale))()
        res = check_close("advantage", fast, group_advantages_ref(r.double(), scale=scale),
                          group_advantages_ref(r.float(), scale=scale))
        rows.append({"op": "group_advantages", "shape": f"B={b} G={g} scale={scale}", "dtype": dtype_name,
                     "advantage": res, "ok": True})
    return rows


def check_win(device, n, k, m_pairs, dtype_name):
    gen = torch.Generator().manual_seed(n + k)
    scores = torch.round((1 + 4 * torch.rand(n, k, generator=gen)) * 20) / 20
    scores[torch.rand(n, k, generator=gen) < 0.05] = float("nan")
    scores = scores.to(DTYPES[dtype_name]).to(device)
    pairs = torch.randint(0, n, (m_pairs, 2), generator=gen).to(device)
    ref = win_matrix_ref(scores.double())
    fast = with_provider("triton", lambda: win_matrix(scores))()
    fast_pairs = with_provider("triton", lambda: win_matrix(scores, pairs=pairs))()
    return [
        {"op": "win_matrix", "shape": f"N={n} K={k}", "dtype": dtype_name, "win": check_close("win", fast, ref),
         "ok": True},
        {"op": "win_matrix(pairs)", "shape": f"N={n} K={k} M={m_pairs}", "dtype": dtype_name,
         "win": check_close("win", fast_pairs, ref[pairs[:, 0], pairs[:, 1]]), "ok": True},
    ]


def run_checks(device, sz) -> list[dict]:
    jobs = [(check_vote, (m, k)) for m, k in sz["vote"]]
    for dt in DTYPES:
        jobs += [(check_fidelity, (b, g, p, dt)) for b, g, p in sz["fid"]]
        jobs += [(check_group, (b, g, dt)) for b, g in sz["group"]]
        jobs += [(check_win, (n, k, sz["win_pairs"], dt)) for n, k in sz["win"]]
    rows = []
    for fn, args in jobs:
        try:
            rows += fn(device, *args)
        except AssertionError as e:  # record and go on: one failure must not hide the others
            rows.append({"op": fn.__name__, "shape": str(args), "ok": False, "error": str(e)})
        except Exception as e:  # a compile error on a new Triton version, say
            rows.append({"op": fn.__name__, "shape": str(args), "ok": False,
                         "error": "".join(traceback.format_exception_only(type(e), e)).strip()})
    return rows


# ------------------------------------------------------------------------------------------------------ timing
# Each op's timing lives in its bench_<op>.py (providers triton, torch and the loop anchor); these are the GPU
# sizes. (module, argv, target): the targets run first and always; the rest is skipped once --budget-s is spent.
def timing_jobs(sz) -> list[tuple[str, list[str], bool]]:
    common = ["--device", sz["device"], "--providers", None, "--reps", str(sz["reps"])]

    def fid(b, g, p):
        return ["--images", str(b), "--rollouts", str(g), "--partners", str(p), "--fused",
                "--loop-triples", str(sz["loop_triples"])]

    def argv(args, providers):
        return args + [providers if a is None else a for a in common]

    (n, k), m = sz["time_win"], sz["time_win_pairs"]
    return [
        ("bench_fidelity", argv(fid(*sz["target_fid"]), "torch,triton,loop"), True),
        ("bench_win_matrix", argv(["--images", str(n), "--samples", str(k), "--pairs", str(m), "--max-seconds", "5"],
                                  "torch,triton"), True),
        ("bench_vote_tally", argv(["--pairs", str(sz["time_vote"][0]), "--votes", str(sz["time_vote"][1])],
                                  "torch,triton"), False),
        ("bench_group_advantage", argv(["--images", str(sz["time_group"][0]), "--rollouts", str(sz["time_group"][1])],
                                       "torch,triton"), False),
        *(("bench_fidelity", argv(fid(*case), "torch,triton,loop"), False) for case in sz["time_fid"]
          if case != sz["target_fid"]),
    ]


# Targets on one H100, judged on the triton row: (op, shape) -> (p50 seconds at most, x the torch p50 at least).
TARGETS = {("fidelity_advantages", "B=512 G=32 partners=8"): (50e-6, 10.0),
           ("win_matrix", "N=10000 K=32"): (50e-3, None)}


def mark_targets(rows: list[dict]) -> None:
    for r in rows:
        target = TARGETS.get((r["op"], r["shape"]))
        if r["provider"] != "triton" or r["status"] != "ok" or target is None:
            continue
        torch_row = next((t for t in rows if t["op"] == r["op"] and t["shape"] == r["shape"]
                          and t["provider"] == "torch" and t["status"] == "ok"), None)
        met = r["p50_ms"] / 1e3 <= target[0] and (target[1] is None or (
            torch_row is not None and torch_row["p50_ms"] / r["p50_ms"] >= target[1]))
        r["note"] = f"target {'met' if met else 'MISSED'}"


def run_timings(sz, deadline) -> list[dict]:
    """Every timing row; a job that raises becomes a failed row (the others still run and the report is written)."""
    import importlib

    rows = []
    for module, argv, always in timing_jobs(sz):
        bench = importlib.import_module(module)
        if not always and time.monotonic() > deadline:
            shape = " ".join(argv[:argv.index("--device")])
            rows.append(row(module.removeprefix("bench_"), "", shape, status="skipped", note="time budget"))
            continue
        try:
            rows += bench.run(argv)
        except (Exception, SystemExit) as e:
            rows.append(row(module.removeprefix("bench_"), "", " ".join(argv), status="failed", note="".join(
                traceback.format_exception_only(type(e), e)).strip().splitlines()[-1]))
    mark_targets(rows)
    return rows


# ------------------------------------------------------------------------------------------------------ report
def p3(r: dict | None) -> str:
    if not r or r["status"] != "ok":
        return "-" if not r else f"{r['status']} ({r['note']})"
    return " / ".join(fmt_s(r[f"p{q}_ms"] / 1e3) for q in (20, 50, 80))


def markdown(env: dict, checks: list[dict], timings: list[dict], wall_s: float, smoke: bool) -> str:
    lines = [f"# Numeric-op kernels on {env['device']}", "",
             *(["**Smoke run: tiny sizes through the Triton interpreter on CPU; the timings mean nothing.**", ""]
               if smoke else []),
             f"commit `{env['commit']}`, torch {env['torch']}, triton {env['triton']}, CUDA {env['cuda']}, "
             f"{env['time_utc']}, suite wall time {wall_s:.0f} s", "",
             "## Correctness (compiled Triton vs float64 reference on the same inputs)", "",
             "| op | shape | inputs | result | max error (bound) |", "|---|---|---|---|---|"]
    for c in checks:
        errs = "; ".join(f"{q} {c[q]['max_err']:.2e} ({c[q]['bound']:.2e})"
                         for q in ("reward", "advantage", "win") if q in c)
        if "exact" in c:
            errs = "counts and labels exact" if c["exact"] else "MISMATCH"
        result = "ok" if c["ok"] else "FAIL: " + c.get("error", "")
        lines.append(f"| {c['op']} | {c['shape']} | {c.get('dtype', '')} | {result} | {errs} |")
    lines += ["", "## Timings, p20 / p50 / p80 (CUDA events; speedups are p50 ratios from this run)", "",
              "| op | size | Triton | torch reference | ancestor loop | x torch | x loop |",
              "|---|---|---|---|---|---|---|"]
    for op, shape in dict.fromkeys((t["op"], t["shape"]) for t in timings):
        by = {t["provider"]: t for t in timings if (t["op"], t["shape"]) == (op, shape)}
        if "" in by:  # the whole job was skipped (time budget) or failed
            lines.append(f"| {op} | {shape} | {by['']['status']} ({by['']['note']}) | | | | |")
            continue
        tri, ref, loop = by.get("triton"), by.get("torch"), by.get("loop")
        ok = [t for t in (tri, ref, loop) if t and t["status"] == "ok"]

        def x(other):
            return f"{other['p50_ms'] / tri['p50_ms']:.1f}" if tri in ok and other in ok else "-"

        loop_s = p3(loop) + (f" ({loop['note']})" if loop in ok and loop["note"] else "")
        mark = f" **{tri['note']}**" if tri in ok and tri["note"].startswith("target") else ""
        lines.append(f"| {op}{mark} | {shape} | {p3(tri)} | {p3(ref)} | {loop_s if loop else '-'} | {x(ref)} | "
                     f"{x(loop) if loop else '-'} |")
    lines += ["", "Targets (one H100): fused fidelity + advantages 512 x 32 x 8 <= 50 us and >= 10x torch; "
              "win matrix 10,000 x 32 <= 50 ms."]
    return "\n".join(lines) + "\n"


def check_rows(checks: list[dict]) -> list[dict]:
    """A failed row per failed correctness check."""
    return [row(c["op"], "triton", f"{c['shape']} {c.get('dtype', '')}".strip(), status="failed",
                note=c.get("error", "correctness check failed")) for c in checks if not c["ok"]]


def run(argv: list[str] | None = None) -> list[dict]:
    """Check, time, write DIR/kernels.{json,md}; the rows: failed checks first, then every timing row."""
    args = build_parser().parse_args(argv)
    t0 = time.monotonic()
    if args.smoke:
        if not _backend.triton_interpret():
            raise Skip("--smoke needs TRITON_INTERPRET=1 set before the kernels are imported")
        device = torch.device("cpu")
    elif not _backend.cuda_available():
        raise Skip("no CUDA device: the compiled Triton kernels need one (the CPU rows time the torch references)")
    else:
        device = torch.device("cuda")
    sz = sizes(args.smoke)
    env = environment(device)
    checks = run_checks(device, sz)
    timings = run_timings(sz, deadline=t0 + args.budget_s)
    wall = time.monotonic() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "kernels.json").write_text(json.dumps(
        {**env, "smoke": args.smoke, "wall_s": wall, "checks": checks, "rows": timings}, indent=2, default=str))
    md = markdown(env, checks, timings, wall, args.smoke)
    (args.out / "kernels.md").write_text(md)
    print(md)
    return check_rows(checks) + timings


def main(argv=None) -> int:
    return main_of(run, argv)


if __name__ == "__main__":
    sys.exit(main())
