"""Normalise + patchify alone (target: <= 3 ms per output megapixel), and its peak memory over the output size.

    python benchmarks/bench_normalize_patchify.py --out DIR [--repeats 40] [--baseline PATH/_native*.so]

Inputs are (H, W, 3) uint8 arrays already at their smart_resize size (812x1204, a multiple of 28), so the native
call skips decoding and resizing and only normalises and patchifies. One thread. For each output dtype (float32,
bfloat16, compact uint8) three buffer modes:
- `reused`: the caller's `out=`, already in memory;
- `fresh`: no `out=`, the previous result freed before the call, as a loop over batches runs (a build with the
  output cache serves it from the block the previous result freed);
- `cold`: the same with the output cache emptied first (`release_output_cache`, untimed): new memory, so the
  kernel's page faults and zeroing (~24 MB per output megapixel in float32) are in the time.
An output megapixel is 1e6 resized input pixels, whatever the dtype.

--baseline loads a second build of the extension (e.g. one compiled from the previous commit) and times it in the
same rounds, round-robin with this checkout's build, so the two are compared side by side under the same load.

Peak memory: a fresh process builds its input, resets its peak RSS (/proc/self/clear_refs), produces one image's
output and reports the peak resident growth over the output's bytes (1.0 = nothing beyond the output itself; 0 =
served from memory the process already held, as small outputs are by malloc).
Writes DIR/bench_normalize_patchify.{json,md} with device, versions, commit and p20/p50/p80. `run(argv)` returns
rows (benchmarks/_rows.py) per dtype and buffer mode for providers `native` (this checkout's build) and `baseline`
(the --baseline build, the anchor when given); their times are ms per output megapixel, not per call.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

import evoquality.io as eio
from evoquality import _backend
from evoquality.io.reference import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _rows  # noqa: E402
from bench_image_pipeline import _photo, environment, peak_growth  # noqa: E402  (same photos and environment record)

PROVIDERS = ("native", "baseline")
ANCHOR = "baseline"

HEIGHT, WIDTH, IMAGES = 812, 1204, 4
DTYPES = ("float32", "bfloat16", "uint8")
MODES = ("reused", "fresh", "cold")


def load_build(path: Path):
    """Another build of evoquality._native, imported from its .so under a private name."""
    spec = importlib.util.spec_from_file_location("evq_baseline._native", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _call(ext, arrays, dtype: str, out):
    return ext.preprocess(arrays, min_pixels=56 * 56, max_pixels=HEIGHT * WIDTH, image_mean=list(OPENAI_CLIP_MEAN),
                          image_std=list(OPENAI_CLIP_STD), dtype=dtype, num_threads=1, out=out)[0]


def ms_per_output_mp(builds: dict, repeats: int) -> dict:
    """name -> dtype -> buffer mode -> {p20, p50, p80} wall ms per output megapixel. One dtype at a time, as a loop
    over batches would run (fresh outputs of one size, each freed before the next call); within it every round
    times every (build, mode) once, in the same order, so drifting machine load hits them alike."""
    arrays = [_photo(HEIGHT, WIDTH, s) for s in range(IMAGES)]
    mp = IMAGES * HEIGHT * WIDTH / 1e6
    res: dict = {"output_megapixels": round(mp, 3), "repeats": repeats}
    for dtype in DTYPES:
        reference = _call(builds["this checkout"], arrays, dtype, None)
        for name, ext in builds.items():  # every build must produce the same bytes before it is timed
            if not np.array_equal(_call(ext, arrays, dtype, None), reference):
                raise SystemExit(f"{name} differs from this checkout's build for dtype={dtype}")
        buf = np.empty_like(reference)
        del reference
        times = {(n, m): [] for n in builds for m in MODES}
        for _ in range(repeats):
            for (name, mode), samples in times.items():
                release = getattr(builds[name], "release_output_cache", None)
                if mode == "cold" and release is not None:
                    release()
                t0 = time.perf_counter()
                r = _call(builds[name], arrays, dtype, buf if mode == "reused" else None)
                samples.append(time.perf_counter() - t0)
                del r
        for (name, mode), samples in times.items():
            p20, p50, p80 = (round(float(v) * 1e3 / mp, 3) for v in np.percentile(samples, [20, 50, 80]))
            res.setdefault(name, {}).setdefault(dtype, {})[mode] = {"p20": p20, "p50": p50, "p80": p80}
    for ext in builds.values():
        if hasattr(ext, "release_output_cache"):
            ext.release_output_cache()
    return res


_PEAK_CHILD = """
import json, sys
from pathlib import Path
import numpy as np
import evoquality.io as eio
sys.path.insert(0, sys.argv[1])
from bench_image_pipeline import _photo
def kib(field):
    return next(int(l.split()[1]) for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field))
rgb = _photo(int(sys.argv[3]), int(sys.argv[4]), 0)
eio.preprocess([np.zeros((56, 56, 3), np.uint8)], dtype=sys.argv[2], num_threads=1)  # first-call allocations
Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
rss0 = kib("VmRSS")
r = eio.preprocess([rgb], max_pixels=rgb.shape[0] * rgb.shape[1], dtype=sys.argv[2], num_threads=1)
print(json.dumps({"rss0_kib": rss0, "hwm_kib": kib("VmHWM"), "output_bytes": r.pixel_values.nbytes}))
"""


def peak_memory() -> dict:
    """dtype -> peak resident growth while producing one 812x1204 image's output, over the output's bytes."""
    res = {}
    for dtype in DTYPES:
        res[dtype] = peak_growth(_PEAK_CHILD, [str(Path(__file__).resolve().parent), dtype, str(HEIGHT), str(WIDTH)],
                                 digits=2)
    return res


def to_markdown(report: dict) -> str:
    env = report["environment"]
    t = report["ms_per_output_mp"]
    lines = ["# Normalise + patchify", "",
             f"- device: {env['device']['cpu']} ({env['device']['cores_usable']} usable cores), 1 thread",
             f"- commit: {env['commit']}, date: {env['date']}",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
             f"- {IMAGES} arrays of {HEIGHT}x{WIDTH} ({t['output_megapixels']} output MP), {t['repeats']} rounds",
             "- path: " + ", ".join(f"{n}: {isa}" for n, isa in report["patchify_isa"].items()), "",
             "ms per output megapixel (wall), p50 [p20-p80]", "",
             "| build | dtype | " + " | ".join(MODES) + " |", "|---|---|" + "---|" * len(MODES)]
    for name in report["builds"]:
        for dtype in DTYPES:
            cells = [f"{s['p50']} [{s['p20']}-{s['p80']}]" for s in (t[name][dtype][m] for m in MODES)]
            lines.append(f"| {name} | {dtype} | " + " | ".join(cells) + " |")
    lines += ["", "Peak resident growth for one image's output (fresh process), over the output's bytes", ""]
    if isinstance(report["peak_memory"], dict):
        lines += ["| dtype | output MB | peak growth MB | ratio |", "|---|---|---|---|"]
        for dtype, m in report["peak_memory"].items():
            lines.append(f"| {dtype} | {m.get('output_mb')} | {m.get('peak_growth_mb')} | "
                         f"{m.get('ratio', m.get('error'))} |")
    else:
        lines.append(str(report["peak_memory"]))
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="directory for the JSON and markdown results")
    parser.add_argument("--repeats", type=int, default=40, help="round-robin rounds (each times every contender)")
    parser.add_argument("--baseline", type=Path, help="a _native*.so of another build, timed side by side")
    return parser


def rows_of(report: dict) -> list[dict]:
    t = report["ms_per_output_mp"]
    names = dict(zip(report["builds"], PROVIDERS))  # "this checkout" -> native, "baseline (...)" -> baseline
    out = []
    for dtype in DTYPES:
        for mode in MODES:
            timings = {names[b]: _rows.spread(*(t[b][dtype][mode][q] / 1e3 for q in ("p20", "p50", "p80")),
                                              t["repeats"]) for b in report["builds"]}
            out += _rows.side_by_side("normalize_patchify", f"{IMAGES}x {HEIGHT}x{WIDTH} {dtype}, {mode} buffer, 1 "
                                      "thread", timings, anchor=ANCHOR,
                                      notes=dict.fromkeys(timings, "ms per output megapixel (wall); target <= 3"))
    return out


def run(argv: list[str] | None = None) -> list[dict]:
    args = build_parser().parse_args(argv)
    if not eio.native_available():
        raise _rows.Skip("evoquality._native is not built (`pip install -e .` builds it)")
    builds = {"this checkout": _backend.native_extension()}
    if args.baseline is not None:
        builds[f"baseline ({args.baseline})"] = load_build(args.baseline)
    report = {"environment": environment(), "builds": list(builds),
              "patchify_isa": {n: getattr(ext, "patchify_isa", lambda: "scalar")() for n, ext in builds.items()}}
    report["ms_per_output_mp"] = ms_per_output_mp(builds, args.repeats)
    report["peak_memory"] = peak_memory() if Path("/proc/self/clear_refs").exists() else "needs Linux /proc"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_normalize_patchify.json").write_text(json.dumps(report, indent=1))
    (args.out / "bench_normalize_patchify.md").write_text(to_markdown(report))
    return _rows.stamp(rows_of(report), "cpu")


def main(argv=None) -> int:
    return _rows.main_of(run, argv)


if __name__ == "__main__":
    sys.exit(main())
