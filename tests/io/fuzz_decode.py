"""Fuzz harness for the native decoders and the batch pipeline.

Every input must end in a result or an ImageDecodeError/ValueError; a crash, a hang, or any other exception is a
finding. Two drivers share `check_one`:

  Long run (coverage-guided, atheris from PyPI; documented run: 1 hour per format family on 1 core):
      python tests/io/fuzz_decode.py -atheris -max_total_time=3600 -rss_limit_mb=2048 CORPUS_DIR
  (CORPUS_DIR starts empty or with real images; the built-in seeds are added at startup.)

  Short deterministic run (CI, no atheris needed): mutations of the seed files (bit flips, byte overwrites,
  truncations, header-size edits, chunk splices):
      python tests/io/fuzz_decode.py --iterations 3000 --seed 0
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
        lambda: eio.decode(data, max_image_pixels=FUZZ_MAX_IMAGE_PIXELS),
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
