"""GPU suite for the numeric ops: compiled Triton kernels checked against the float64 references, then timed
against the PyTorch reference (on the same GPU) and the ancestor's per-pair loop.

    python benchmarks/gpu_kernels.py --out DIR            # on a CUDA machine; < 2 minutes on one H100
    python benchmarks/gpu_kernels.py --out DIR --smoke    # tiny sizes on CPU through the Triton interpreter:
                                                          # exercises this script end to end, times nothing real

Writes DIR/kernels.json (every row with device, versions, commit) and DIR/kernels.md (the tables). Exit status 1
when a correctness check fails, 0 otherwise; target misses are reported, not fatal.
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


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on CPU via TRITON_INTERPRET (script check)")
    ap.add_argument("--budget-s", type=float, default=100.0, help="skip remaining timings after this wall time")
    return ap.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None and ARGS.smoke:
    os.environ["TRITON_INTERPRET"] = "1"  # before anything imports triton kernels

import torch  # noqa: E402

sys.path.insert(0, str(HERE))
from _timing import environment, fmt_s, time_fn  # noqa: E402
from bench_fidelity import loop_timing_on_subset, make_case, partner_lists  # noqa: E402

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
            "reps": 3,
        }
    return {
        "vote": [(20001, 32), (999, 33)], "fid": [(7, 5, "dense"), (512, 32, 8), (1023, 8, 1), (257, 32, "all")],
        "group": [(512, 32), (1023, 7)], "win": [(1001, 32), (333, 17)], "win_pairs": 5000,
        "time_fid": [(b, g, p) for b in (64, 256, 1024) for g in (8, 32) for p in (1, 8, "all")],
        "target_fid": (512, 32, 8), "time_vote": (20000, 32), "time_group": (512, 32), "time_win": (10000, 32),
        "time_win_pairs": 20000, "loop_triples": 200, "reps": 50,
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
def time_fidelity(device, b, g, partners, sz) -> dict:
    n_partners = b - 1 if partners == "all" else partners
    scores, p = make_case(b, g, n_partners, seed=b + g)
    scores, p = scores.to(device), p.to(device)
    reps = sz["reps"]
    tri = time_fn(with_provider("triton", lambda: fidelity_advantages(scores, p)), device=device, reps=reps)
    ref = time_fn(with_provider("torch", lambda: fidelity_advantages(scores, p)), device=device, reps=reps,
                  max_seconds=2.0)
    loop = loop_timing_on_subset(scores, p, partner_lists(p), max_triples=sz["loop_triples"], device=device)
    return {"op": "fidelity_advantages", "B": b, "G": g, "partners": partners, "triton": tri, "torch": ref,
            "loop": loop, "x_vs_torch": ref["p50_s"] / tri["p50_s"], "x_vs_loop": loop["p50_s"] / tri["p50_s"]}


def time_target(device, sz) -> dict:
    b, g, partners = sz["target_fid"]
    row = time_fidelity(device, b, g, partners, sz)
    row.update(target=True, target_p50_s=50e-6, target_x_vs_torch=10.0,
               met=row["triton"]["p50_s"] <= 50e-6 and row["x_vs_torch"] >= 10.0)
    return row


def win_scores(device, n, k):
    return (torch.round((1 + 4 * torch.rand(n, k, generator=torch.Generator().manual_seed(0))) * 100) / 100).to(device)


def time_win(device, sz, deadline) -> dict:
    n, k = sz["time_win"]
    scores = win_scores(device, n, k)
    tri = time_fn(with_provider("triton", lambda: win_matrix(scores)), device=device, warmup=1, reps=10)
    row = {"op": "win_matrix", "N": n, "K": k, "triton": tri, "target_p50_s": 50e-3, "met": tri["p50_s"] <= 50e-3}
    if time.monotonic() < deadline:
        row["torch"] = time_fn(with_provider("torch", lambda: win_matrix(scores)), device=device, warmup=0, reps=3,
                               max_seconds=5.0)
    return row


def time_win_pairs(device, sz) -> dict:
    (n, k), m = sz["time_win"], sz["time_win_pairs"]
    scores = win_scores(device, n, k)
    pairs = torch.randint(0, n, (m, 2), generator=torch.Generator().manual_seed(1)).to(device)
    return {"op": "win_matrix(pairs)", "N": n, "K": k, "M": m,
            "triton": time_fn(with_provider("triton", lambda: win_matrix(scores, pairs=pairs)), device=device),
            "torch": time_fn(with_provider("torch", lambda: win_matrix(scores, pairs=pairs)), device=device)}


def time_vote(device, sz) -> dict:
    m, k = sz["time_vote"]
    votes = torch.randint(0, 2, (m, k)).to(device)
    swapped, valid = (torch.rand(m, k) < 0.5).to(device), (torch.rand(m, k) < 0.9).to(device)
    return {"op": "vote_tally", "M": m, "K": k,
            "triton": time_fn(with_provider("triton", lambda: vote_tally(votes, swapped, valid)), device=device),
            "torch": time_fn(with_provider("torch", lambda: vote_tally(votes, swapped, valid)), device=device)}


def time_group(device, sz) -> dict:
    b, g = sz["time_group"]
    r = torch.rand(b, g).to(device)
    return {"op": "group_advantages", "B": b, "G": g,
            "triton": time_fn(with_provider("triton", lambda: group_advantages(r)), device=device),
            "torch": time_fn(with_provider("torch", lambda: group_advantages(r)), device=device)}


def run_timings(device, sz, deadline) -> list[dict]:
    """Every timing row; one that raises becomes an "error" row (the others still run and the report is written)."""
    jobs = [(("fidelity_advantages", {"B": b, "G": g, "partners": p}), True,
             lambda b=b, g=g, p=p: time_fidelity(device, b, g, p, sz)) for b, g, p in sz["time_fid"]]
    jobs += [
        (("fidelity_advantages", dict(zip("BG", sz["target_fid"][:2]), partners=sz["target_fid"][2])), False,
         lambda: time_target(device, sz)),
        (("win_matrix", dict(zip("NK", sz["time_win"]))), False, lambda: time_win(device, sz, deadline)),
        (("win_matrix(pairs)", dict(zip("NK", sz["time_win"]), M=sz["time_win_pairs"])), True,
         lambda: time_win_pairs(device, sz)),
        (("vote_tally", dict(zip("MK", sz["time_vote"]))), True, lambda: time_vote(device, sz)),
        (("group_advantages", dict(zip("BG", sz["time_group"]))), True, lambda: time_group(device, sz)),
    ]
    rows = []
    for (op, size), optional, job in jobs:
        if optional and time.monotonic() > deadline:  # the targets always run
            rows.append({"op": op, **size, "skipped": "time budget"})
            continue
        try:
            rows.append(job())
        except Exception as e:
            rows.append({"op": op, **size, "skipped": "error: " + "".join(
                traceback.format_exception_only(type(e), e)).strip().splitlines()[-1]})
    return rows


# ------------------------------------------------------------------------------------------------------ report
def p3(t: dict | None) -> str:
    if not t:
        return "-"
    return f"{fmt_s(t['p20_s'])} / {fmt_s(t['p50_s'])} / {fmt_s(t['p80_s'])}"


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
    for t in timings:
        size = " ".join(f"{k}={t[k]}" for k in ("B", "G", "partners", "N", "K", "M") if k in t)
        if "skipped" in t:
            lines.append(f"| {t['op']} | {size} | skipped ({t['skipped']}) | | | | |")
            continue
        loop = t.get("loop")
        loop_s = p3(loop) + (f" (extrapolated from {loop['measured_triples']} of {loop['total_triples']} triples)"
                             if loop and loop["extrapolated"] else "") if loop else "-"
        xt = f"{t['torch']['p50_s'] / t['triton']['p50_s']:.1f}" if t.get("torch") else "-"
        xl = f"{t['x_vs_loop']:.0f}" if "x_vs_loop" in t else "-"
        mark = f" **target {'met' if t['met'] else 'MISSED'}**" if "met" in t else ""
        lines.append(
            f"| {t['op']}{mark} | {size} | {p3(t['triton'])} | {p3(t.get('torch'))} | {loop_s} | {xt} | {xl} |")
    lines += ["", "Targets (one H100): fused fidelity + advantages 512 x 32 x 8 <= 50 us and >= 10x torch; "
              "win matrix 10,000 x 32 <= 50 ms."]
    return "\n".join(lines) + "\n"


def main(args) -> int:
    t0 = time.monotonic()
    if args.smoke:
        device = torch.device("cpu")
    elif not _backend.cuda_available():
        print("no CUDA device: nothing to check (use --smoke to exercise the script on CPU)")
        return 2
    else:
        device = torch.device("cuda")
    sz = sizes(args.smoke)
    env = environment(device)
    checks = run_checks(device, sz)
    timings = run_timings(device, sz, deadline=t0 + args.budget_s)
    wall = time.monotonic() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "kernels.json").write_text(json.dumps(
        {**env, "smoke": args.smoke, "wall_s": wall, "checks": checks, "timings": timings}, indent=2, default=str))
    md = markdown(env, checks, timings, wall, args.smoke)
    (args.out / "kernels.md").write_text(md)
    print(md)
    return 0 if all(c["ok"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main(ARGS))
