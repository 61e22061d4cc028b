"""Fuzz harness for the native decoders and the batch pipeline.

Every input must end in a result or an ImageDecodeError/ValueError; a crash, a sanitizer report, a hang or any
other exception is a finding (the mutation driver saves the input as fuzz-crash-SEED-N.bin, libFuzzer as crash-*).
Two drivers share `check_one`:

Short deterministic run (CI, tests/io/test_io_fuzz.py; no extra packages): mutations of the seed files (bit flips,
byte overwrites, truncations, header-size edits, splices, duplicated chunks/markers):
    python tests/io/fuzz_decode.py --iterations 2000 --seed 0

Long runs (documented; both verified on Debian 12 on 2026-11-27):
1. Mutation driver on a gcc ASan + UBSan build (no clang needed):
    python -m pip wheel . --no-deps --no-build-isolation -w build/asan-wheel \
        --config-settings=cmake.define.EVQ_SANITIZE=address,undefined --config-settings=build-dir=build/asan
    python3 -m venv /tmp/asan-venv && /tmp/asan-venv/bin/pip install numpy pillow \
        && /tmp/asan-venv/bin/pip install --no-deps build/asan-wheel/*.whl
    LD_PRELOAD="$(gcc -print-file-name=libasan.so) /usr/lib/x86_64-linux-gnu/libstdc++.so.6" \
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        /tmp/asan-venv/bin/python tests/io/fuzz_decode.py --iterations 10000000 --seed 1 --time-budget 3600
   (libstdc++ is preloaded so ASan can intercept C++ throws; Python's own leaks are not findings.)
2. Coverage-guided atheris/libFuzzer on a clang build instrumented for coverage + ASan (apt: clang-14,
   libclang-rt-14-dev; LTO off, the gold plugin crashes on sanitizer builds):
    CC=clang-14 CXX=clang++-14 python -m pip wheel . --no-deps --no-build-isolation -w build/fuzz-wheel \
        --config-settings=cmake.define.EVQ_SANITIZE=fuzzer-no-link,address \
        --config-settings=cmake.define.CMAKE_INTERPROCEDURAL_OPTIMIZATION=OFF --config-settings=build-dir=build/fuzz
    python3 -m venv /tmp/fuzz-venv && /tmp/fuzz-venv/bin/pip install numpy pillow atheris \
        && /tmp/fuzz-venv/bin/pip install --no-deps build/fuzz-wheel/*.whl
    LD_PRELOAD="$(/tmp/fuzz-venv/bin/python -c 'import atheris; print(atheris.path())')/asan_with_fuzzer.so" \
    ASAN_OPTIONS=detect_leaks=0 /tmp/fuzz-venv/bin/python tests/io/fuzz_decode.py -atheris \
        -max_total_time=3600 -rss_limit_mb=3072 CORPUS_DIR
   (the built-in seeds are written into CORPUS_DIR at startup; coverage is of csrc/ only, the system codec
   libraries are not instrumented.)
"""

from __future__ import annotations

import argparse
import os
import random
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import evoquality.io as eio  # noqa: E402
from io_helpers import encoded_rgb, mode_variants  # noqa: E402

# Small limits keep each iteration fast; the size checks themselves are what is being fuzzed.
FUZZ_MAX_IMAGE_PIXELS = 4_000_000


def check_one(data: bytes) -> str:
    """Run every entry point on `data`; returns "ok" or "error" and lets anything unexpected propagate."""
    outcome = "ok"
    for call in (
        lambda: eio.probe(data, max_image_pixels=FUZZ_MAX_IMAGE_PIXELS),
        lambda: eio.decode(data, max_image_pixels=FUZZ_MAX_IMAGE_PIXELS, strict=True),
        lambda: eio.decode(data, max_image_pixels=FUZZ_MAX_IMAGE_PIXELS, strict=False, apply_exif_orientation=True),
        lambda: eio.preprocess([data], max_image_pixels=FUZZ_MAX_IMAGE_PIXELS, max_pixels=64 * 28 * 28,
                               approx=True, num_threads=1),
    ):
        try:
            result = call()
        except ValueError:  # ImageDecodeError is a ValueError
            outcome = "error"
            continue
        if isinstance(result, np.ndarray) and result.ndim == 3:
            assert result.shape[2] == 3 and result.dtype == np.uint8, result.shape
    return outcome


def seeds() -> list[bytes]:
    out = list(mode_variants(seed=1).values())
    out += [encoded_rgb(9, 300, "JPEG"), encoded_rgb(300, 9, "PNG"), encoded_rgb(40, 40, "WEBP")]
    return out


def mutate(data: bytes, rng: random.Random, pool: list[bytes]) -> bytes:
    b = bytearray(data)
    kind = rng.randrange(6)
    if kind == 0:  # bit flips
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == 1:  # overwrite a run with interesting bytes
        i = rng.randrange(len(b))
        val = rng.choice([0x00, 0xFF, 0x7F, 0x80])
        for j in range(i, min(len(b), i + rng.randint(1, 16))):
            b[j] = val
    elif kind == 2:  # truncate
        b = b[: rng.randrange(len(b))]
    elif kind == 3:  # header-size edit: a big-endian/little-endian 16/32-bit field near the start
        i = rng.randrange(min(len(b), 64) or 1)
        fmt = rng.choice([">H", "<H", ">I", "<I"])
        n = struct.calcsize(fmt)
        if i + n <= len(b):
            b[i:i + n] = struct.pack(fmt, rng.choice([0, 1, 2**(8 * n) - 1, 2**(8 * n - 1), rng.randrange(2**(8 * n))]))
    elif kind == 4:  # splice two files
        other = rng.choice(pool)
        b = b[: rng.randrange(len(b) + 1)] + other[rng.randrange(len(other)):]
    else:  # duplicate a slice (repeated markers / chunks)
        i, j = sorted(rng.randrange(len(b) + 1) for _ in range(2))
        b = b[:j] + b[i:j] + b[j:]
    return bytes(b)


def run_mutations(iterations: int, seed: int, time_budget: float) -> dict[str, int]:
    rng = random.Random(seed)
    pool = seeds()
    counts = {"ok": 0, "error": 0}
    t0 = time.perf_counter()
    for n in range(iterations):
        data = mutate(rng.choice(pool), rng, pool)
        try:
            counts[check_one(data)] += 1
        except Exception:
            path = os.path.abspath(f"fuzz-crash-{seed}-{n}.bin")
            with open(path, "wb") as f:
                f.write(data)
            print(f"FINDING at iteration {n}: input saved to {path}", file=sys.stderr)
            raise
        if time.perf_counter() - t0 > time_budget:
            break
    counts["iterations"] = counts["ok"] + counts["error"]
    return counts


def main() -> None:
    if "-atheris" in sys.argv:
        import atheris

        argv = [a for a in sys.argv if a != "-atheris"]
        corpus = [a for a in argv[1:] if not a.startswith("-")]
        if corpus:
            os.makedirs(corpus[0], exist_ok=True)
            for i, s in enumerate(seeds()):
                with open(os.path.join(corpus[0], f"seed-{i}"), "wb") as f:
                    f.write(s)
        atheris.Setup(argv, lambda data: check_one(bytes(data)))
        atheris.Fuzz()
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-budget", type=float, default=120.0, help="stop after this many seconds")
    args = parser.parse_args()
    counts = run_mutations(args.iterations, args.seed, args.time_budget)
    print(f"fuzz: {counts['iterations']} inputs, {counts['ok']} decoded, {counts['error']} clean errors")


if __name__ == "__main__":
    main()
