"""Fuzz harness for the native decoders and the batch pipeline.

Every input must end in a result or an ImageDecodeError/ValueError, and strict and lenient decoding must agree
(a file strict mode decodes, lenient mode decodes to the same pixels with no warning); a crash, a sanitizer report,
a hang, a disagreement or any other exception is a finding (the mutation driver saves the input as
fuzz-crash-SEED-N.bin, libFuzzer as crash-*). Seeds: the built-in files (every colour mode of every format) plus,
with --seed-dir (repeatable), every JPEG/PNG/WebP of at most 64 KiB under a folder (e.g. a third-party image
corpus; larger files only slow each execution down). Two drivers share `check_one`:

1. Mutation driver (no extra packages; CI runs it, tests/io/test_io_fuzz.py): bit flips, byte overwrites,
   truncations, header-size edits, splices, duplicated chunks/markers of the seeds:
    python tests/io/fuzz_decode.py --iterations 2000 --seed 0 [--seed-dir DIR]
2. atheris (libFuzzer's mutators, coverage of this Python harness; `pip install atheris`, CI runs it briefly):
    python tests/io/fuzz_decode.py -atheris [--seed-dir DIR] -runs=1000000 -max_len=65536 CORPUS_DIR
   (the seeds are written into CORPUS_DIR at startup; a tally is printed every 10,000 executions. Add
   -keep_seed=1 -len_control=0 -entropic=0 -prefer_small=0: without native coverage libFuzzer would otherwise drop
   the seeds and spend its time on a few tiny files; half of the mutations are this harness' own, see `mutator`.)

Sanitizer builds (gcc ASan + UBSan, no clang needed; the recorded long run and its exact recipe are in
benchmarks/results/2026-11-29-fuzz/README.md):
    python -m pip wheel . --no-deps --no-build-isolation -w build/asan-wheel \
        --config-settings=cmake.define.EVQ_SANITIZE=address,undefined --config-settings=build-dir=build/asan
    python3 -m venv /tmp/asan-venv && /tmp/asan-venv/bin/pip install numpy pillow atheris==3.0.0 \
        && /tmp/asan-venv/bin/pip install --no-deps build/asan-wheel/*.whl
    LD_PRELOAD="$(gcc -print-file-name=libasan.so) /usr/lib/x86_64-linux-gnu/libstdc++.so.6" \
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        /tmp/asan-venv/bin/python tests/io/fuzz_decode.py -atheris --seed-dir DIR -runs=1000000 -max_len=65536 \
        -keep_seed=1 -len_control=0 -entropic=0 -prefer_small=0 CORPUS_DIR
   (libstdc++ is preloaded so ASan can intercept C++ throws; Python's own leaks are not findings.) A clang build
   with EVQ_SANITIZE=fuzzer-no-link,address and atheris' asan_with_fuzzer.so preloaded adds coverage of csrc/
   (apt: clang-14, libclang-rt-14-dev; LTO off, the gold plugin crashes on sanitizer builds).
"""

from __future__ import annotations

import argparse
import os
import random
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import evoquality.io as eio  # noqa: E402
from io_helpers import encoded_rgb, mode_variants  # noqa: E402

# Small limits keep each iteration fast; the size checks themselves are what is being fuzzed.
FUZZ_MAX_IMAGE_PIXELS = 4_000_000


def _attempt(call):
    try:
        return call()
    except ValueError:  # ImageDecodeError is a ValueError
        return None


def check_one(data: bytes) -> str:
    """Run every entry point on `data`; returns "ok", "warning" (lenient decode with a warning) or "error" and lets
    anything unexpected propagate."""
    limit = FUZZ_MAX_IMAGE_PIXELS
    strict = _attempt(lambda: eio.decode(data, max_image_pixels=limit, strict=True))
    lenient = _attempt(lambda: eio.decode(data, max_image_pixels=limit, return_warning=True))
    if strict is not None:
        assert lenient is not None and lenient[1] == "" and np.array_equal(lenient[0], strict), \
            "strict mode decodes but lenient mode differs"
    if lenient is not None:
        image = lenient[0]
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8, image.shape
    for call in (
        lambda: eio.probe(data, max_image_pixels=limit),
        lambda: eio.probe(data, max_image_pixels=limit, strict=True),
        lambda: eio.decode(data, max_image_pixels=limit, apply_exif_orientation=True),
        lambda: eio.preprocess([data], max_image_pixels=limit, max_pixels=64 * 28 * 28, approx=True, num_threads=1),
    ):
        _attempt(call)
    if lenient is None:
        return "error"
    return "warning" if lenient[1] else "ok"


MAX_SEED_BYTES = 64 * 1024


def seeds(seed_dirs=()) -> list[bytes]:
    out = list(mode_variants(seed=1).values())
    out += [encoded_rgb(9, 300, "JPEG"), encoded_rgb(300, 9, "PNG"), encoded_rgb(40, 40, "WEBP")]
    for folder in seed_dirs:
        for path in sorted(Path(folder).rglob("*")):
            if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp") and 0 < path.stat().st_size <= MAX_SEED_BYTES:
                out.append(path.read_bytes())
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


def run_mutations(iterations: int, seed: int, time_budget: float, seed_dirs=()) -> dict[str, int]:
    rng = random.Random(seed)
    pool = seeds(seed_dirs)
    counts = {"ok": 0, "warning": 0, "error": 0, "seeds": len(pool)}
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
    counts["iterations"] = counts["ok"] + counts["warning"] + counts["error"]
    return counts


def _pop_seed_dirs(argv: list[str]) -> tuple[list[str], list[str]]:
    """--seed-dir DIR (repeatable) out of an argv that libFuzzer also parses."""
    rest, dirs = [], []
    it = iter(argv)
    for a in it:
        if a == "--seed-dir":
            dirs.append(next(it))
        elif a.startswith("--seed-dir="):
            dirs.append(a.split("=", 1)[1])
        else:
            rest.append(a)
    return rest, dirs


def run_atheris(argv: list[str]) -> None:
    import atheris

    argv, seed_dirs = _pop_seed_dirs([a for a in argv if a != "-atheris"])
    corpus = [a for a in argv[1:] if not a.startswith("-")]
    pool = seeds(seed_dirs)
    if corpus:
        os.makedirs(corpus[0], exist_ok=True)
        for i, s in enumerate(pool):
            with open(os.path.join(corpus[0], f"seed-{i}"), "wb") as f:
                f.write(s)
    counts = {"ok": 0, "warning": 0, "error": 0}
    print(f"fuzz (atheris): {len(pool)} seeds", file=sys.stderr, flush=True)

    def one(data: bytes) -> None:
        counts[check_one(bytes(data))] += 1
        n = sum(counts.values())
        if n % 10_000 == 0:
            print(f"fuzz (atheris): {n} executions: {counts}", file=sys.stderr, flush=True)

    def mutator(data: bytes, max_size: int, seed: int) -> bytes:
        # Every other mutation is this harness' structure-aware one (header fields, chunk duplication, splices) on
        # the unit libFuzzer picked: libFuzzer's byte-level mutators alone seldom keep an image decodable.
        rng = random.Random(seed)
        if rng.random() < 0.5 or not data:
            return atheris.Mutate(data, max_size)
        return mutate(bytes(data), rng, pool)[:max_size]

    atheris.Setup(argv, one, custom_mutator=mutator)
    atheris.Fuzz()


def main() -> None:
    if "-atheris" in sys.argv:
        run_atheris(sys.argv)
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-budget", type=float, default=120.0, help="stop after this many seconds")
    parser.add_argument("--seed-dir", action="append", default=[], help="add the images under this folder as seeds")
    args = parser.parse_args()
    counts = run_mutations(args.iterations, args.seed, args.time_budget, args.seed_dir)
    print(f"fuzz: {counts['iterations']} inputs from {counts['seeds']} seeds, {counts['ok']} decoded, "
          f"{counts['warning']} decoded with a warning, {counts['error']} clean errors")


if __name__ == "__main__":
    main()
