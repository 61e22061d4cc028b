"""The one table of tolerances, and the rule that uses it. Tests and `benchmarks/gpu_kernels.py` both read it.

Rule (flash-attention's): a fast path computing in fp32 (Triton, compiled or interpreted) must be no worse than
twice a same-precision PyTorch computation, both measured against the float64 reference on the same input values:
    max |fast - ref64| <= 2 * max |torch32 - ref64| + FLOOR[quantity]
The floor (a couple of fp32 ulp at the quantity's scale) covers cases where the fp32 PyTorch path happens to be
exact. A fixed absolute tolerance would be wrong here: the fidelity reward divides by sqrt(var_i + var_j + gamma),
as small as 1e-3, and the advantage by std + 1e-4, so fp32 rounding of the inputs' differences is amplified by up to
~1e3-1e4 in ill-conditioned groups, identically for every fp32 implementation.
NaN positions must match exactly. Integer outputs (vote counts) compare exactly and have no entry; the win
probabilities are exact counts divided once, so they use the floor alone.
"""

from __future__ import annotations

import torch

FLOOR: dict[str, float] = {
    "reward": 2.4e-7,  # rewards in [0, 1]: 2 ulp at 1.0
    "advantage": 1e-6,  # |advantage| up to ~sqrt(G) ~ 6 for G = 32: 2 ulp
    "win": 1.2e-7,  # p = count / (n_i n_j) or 1 - p: 1 ulp at 1.0
}


def max_error(value: torch.Tensor, ref64: torch.Tensor) -> float:
    """max |value - ref64| over positions where the reference is not NaN (0.0 for an empty tensor)."""
    keep = ~torch.isnan(ref64)
    if not bool(keep.any()):
        return 0.0
    return float((value.double()[keep] - ref64[keep]).abs().max())


def check_close(quantity: str, fast: torch.Tensor, ref64: torch.Tensor, torch32: torch.Tensor | None = None) -> dict:
    """Compare `fast` with the float64 reference by the rule above; returns the figures, raises AssertionError.

    torch32: the same op computed by the PyTorch reference in fp32 (None: floor only, for exact-count quantities).
    """
    if tuple(fast.shape) != tuple(ref64.shape):
        raise AssertionError(f"{quantity}: shape {tuple(fast.shape)} != reference {tuple(ref64.shape)}")
    nan_fast, nan_ref = torch.isnan(fast), torch.isnan(ref64)
    if not torch.equal(nan_fast.cpu(), nan_ref.cpu()):
        differ = int((nan_fast != nan_ref).sum())
        raise AssertionError(f"{quantity}: NaN at {differ} positions that differ from the reference")
    err = max_error(fast, ref64)
    base = max_error(torch32, ref64) if torch32 is not None else 0.0
    bound = 2.0 * base + FLOOR[quantity]
    if not err <= bound:
        raise AssertionError(f"{quantity}: max error {err:.3g} > bound {bound:.3g} (2 x fp32 torch {base:.3g} + floor)")
    return {"max_err": err, "torch32_max_err": base, "bound": bound}
