"""Compile every kernel variant the wrappers launch at the GPU target sizes (docs/benchmarks.md) for sm_90 (H100),
without a GPU.

The interpreter runs kernels as numpy and misses what only the compiler checks (loop-carried types, layouts,
register pressure). Triton can compile ahead of time for a named target with no driver: this script does, to
cubin, with the launch configs the wrappers use (`config` in each kernel module). Run it with TRITON_INTERPRET
unset (test_compile_sm90.py does, in a subprocess). Prints one line per variant; exit status 1 on any failure.
"""

from __future__ import annotations

import os
import sys

if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
    sys.exit("run without TRITON_INTERPRET: the interpreter replaces @triton.jit kernels at import")

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from evoquality.kernels import fidelity, group_advantage, vote_tally, win_matrix  # noqa: E402
from evoquality.ops.fidelity import MIN_VALID  # noqa: E402

TARGET = GPUTarget("cuda", 90, 32)


def variants():
    """(kernel, pointer/scalar signature, constexprs incl. num_warps) for what the wrappers launch."""
    fid_sig = {
        "scores_ptr": "*fp32", "valid_ptr": "*u8", "indptr_ptr": "*i64", "indices_ptr": "*i64", "pstar_ptr": "*fp32",
        "rewards_ptr": "*fp32", "adv_ptr": "*fp32", "G": "i32", "stride_s": "i32", "gamma": "fp32", "eps": "fp32",
    }
    # every block shape the target sizes produce, with the training step's flags ...
    for b, g in [(64, 8), (256, 32), (512, 32), (1024, 32), (7, 5), (3, 1)]:
        for partners in (1, 8, b - 1):
            cfg = fidelity.config(b, g, b * partners)
            yield fidelity._fidelity_kernel, fid_sig, {"HAS_VALID": False, "ADV_MODE": 0, "MIN_N": MIN_VALID, **cfg}
    # ... and every flag combination and input dtype at the training step's shape (flags and shapes are orthogonal)
    for score_t in ("*fp32", "*bf16", "*fp16", "*fp64"):
        for adv in (-1, 0, 2):
            for has_valid in (False, True):
                yield fidelity._fidelity_kernel, {**fid_sig, "scores_ptr": score_t}, {
                    "HAS_VALID": has_valid, "ADV_MODE": adv, "MIN_N": MIN_VALID, **fidelity.config(512, 32, 512 * 8)}
    for g in (1, 32):
        for scale in (0, 1, 2):
            yield group_advantage._group_advantage_kernel, {
                "rewards_ptr": "*fp32", "adv_ptr": "*fp32", "batch_std_ptr": "*fp32", "G": "i32", "stride_r": "i32",
                "eps": "fp32",
            }, {"SCALE": scale, **group_advantage.config(g)}
    for votes_t in ("*i64", "*u8"):
        for m, k in [(20000, 32), (7, 33)]:
            for flags in (False, True):
                yield vote_tally._vote_tally_kernel, {
                    "votes_ptr": votes_t, "swapped_ptr": "*u8", "valid_ptr": "*u8", "wins_i_ptr": "*i64",
                    "wins_j_ptr": "*i64", "invalid_ptr": "*i64", "M": "i32", "K": "i32",
                }, {"HAS_SWAPPED": flags, "HAS_VALID": flags, **vote_tally.config(m, k)}
    for k in (5, 32):
        yield win_matrix._win_matrix_kernel, {
            "lo_ptr": "*fp32", "hi_ptr": "*fp32", "n_ptr": "*fp32", "out_ptr": "*fp32", "N": "i32", "K": "i32",
        }, win_matrix.config_all_pairs(k)
        yield win_matrix._win_pairs_kernel, {
            "lo_ptr": "*fp32", "hi_ptr": "*fp32", "n_ptr": "*fp32", "pairs_ptr": "*i64", "out_ptr": "*fp32",
            "M": "i32", "K": "i32",
        }, win_matrix.config_pairs(20000, k)


def main() -> int:
    seen, failed = set(), 0
    for kernel, sig, const in variants():
        const = dict(const)
        warps = const.pop("num_warps")
        key = (kernel.__name__, tuple(sorted(sig.items())), tuple(sorted(const.items())), warps)
        if key in seen:
            continue
        seen.add(key)
        src = ASTSource(fn=kernel, signature={**sig, **{k: "constexpr" for k in const}}, constexprs=const)
        try:
            compiled = triton.compile(src, target=TARGET, options={"num_warps": warps})
            ok = "cubin" in compiled.asm
        except Exception as e:  # report every failing variant, not just the first
            ok, why = False, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        print(f"{'ok  ' if ok else 'FAIL'} {kernel.__name__} {const} warps={warps}" + ("" if ok else f" -- {why}"))
        failed += not ok
    print(f"{len(seen)} variants, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
