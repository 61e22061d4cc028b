"""A tiny shared timing helper for the benchmarks: spread (p20/p50/p80), and where a number came from.

Every benchmark row carries `environment()` (device, versions, commit) so numbers are only ever compared with
numbers measured side by side in one run (docs/benchmarks.md). On CUDA, `time_fn` times with CUDA events around
each call (the kernel time as the stream sees it, launch overhead included); on CPU with perf_counter.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Callable

import torch

REPO = Path(__file__).resolve().parents[1]


def git_commit() -> str:
    """The commit the benchmark ran at (+ "-dirty" when tracked files differ), "unknown" outside a checkout."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=REPO).returncode != 0
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} CPU, {torch.get_num_threads()} torch threads, {os.cpu_count()} cores"


# The libraries a benchmark number depends on, in the order every row lists them.
LIBRARIES = ("torch", "triton", "transformers", "trl", "numpy", "evoquality")


def versions() -> dict:
    """Installed version of each of `LIBRARIES` (None where not installed), read without importing them."""
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def environment(device: torch.device | str = "cpu") -> dict:
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    return {
        "device": device_name(device),
        "torch": torch.__version__,
        "triton": triton_version,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "commit": git_commit(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def percentiles(samples_s: list[float]) -> dict:
    """p20/p50/p80 in seconds (nearest-rank on the sorted samples) and the sample count."""
    xs = sorted(samples_s)

    def q(f: float) -> float:
        return xs[min(len(xs) - 1, max(0, round(f * (len(xs) - 1))))]

    return {"p20_s": q(0.2), "p50_s": statistics.median(xs), "p80_s": q(0.8), "reps": len(xs)}


def time_fn(fn: Callable[[], object], *, device: torch.device | str = "cpu", warmup: int = 3, reps: int = 20,
            max_seconds: float | None = None) -> dict:
    """Time `fn()` `reps` times after `warmup` calls; stops early (>= 3 reps) once `max_seconds` are spent."""
    cuda = torch.device(device).type == "cuda"
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize(device)
    samples: list[float] = []
    spent = 0.0
    for _ in range(reps):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
        spent += samples[-1]
        if max_seconds is not None and spent > max_seconds and len(samples) >= 3:
            break
    return percentiles(samples)


def fmt_s(seconds: float) -> str:
    """Seconds in a readable unit."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"
