"""Image preprocessing throughput: encoded bytes -> (pixel_values, image_grid_thw), side by side in one run.

    python benchmarks/bench_image_pipeline.py --out DIR [--threads 1 2] [--rounds 15] [--time-budget 100]

`run(argv)` returns rows (benchmarks/_rows.py): per case and thread count, each provider's time per image against
the fastest transformers processor of that case (the anchor), plus normalise+patchify per output megapixel.
Providers (each gets the same encoded images; every round runs all of them once, round-robin, so drifting machine
load hits them alike):
- transformers-pil:   Qwen2VLImageProcessorPil on PIL images opened from the bytes (the CPU default path);
- transformers-torchvision: Qwen2VLImageProcessor (torchvision backend), only where torchvision imports;
- pillow-numpy:       evoquality.io.reference (Pillow decode/resize + numpy normalise/patchify);
- native-exact:       evoquality.io.preprocess (bit-identical to transformers-pil);
- native-approx:      the same with approx=True (JPEG DCT-domain downscale first);
- native-uint8:       exact pixels in the compact uint8 layout (normalise on the GPU).
Python contenders use T threads by splitting the batch into T chunks (Pillow releases the GIL while decoding and
resizing); the native ones pass num_threads=T. Cases: JPEG 3000x2000 and 1024x768 at max_pixels
1,003,520 and 200,704, PNG 1024x768. Also reported: normalise+patchify time per output megapixel, peak memory over
the output size, and the approximate mode's error in LSB. Writes DIR/bench_image_pipeline.{json,md} after every
case (a run cut short keeps what it measured), with device, versions, commit and p20/p50/p80 images/s.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

import evoquality.io as eio
from evoquality import _backend
from evoquality.io.reference import preprocess_ref

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _rows  # noqa: E402
from _rows import row, side_by_side, spread  # noqa: E402

PROVIDERS = ("transformers-pil", "transformers-torchvision", "pillow-numpy", "native-exact", "native-approx",
             "native-uint8")
ANCHOR = None  # chosen per case: the fastest transformers processor that imports here

DISTINCT = 8  # distinct images per case; larger batches cycle through them

CASES = [  # (name, format, height, width, max_pixels) in priority order
    ("jpeg-3000x2000-1M", "JPEG", 2000, 3000, 1_003_520),
    ("jpeg-1024x768-1M", "JPEG", 768, 1024, 1_003_520),
    ("png-1024x768-1M", "PNG", 768, 1024, 1_003_520),
    ("jpeg-3000x2000-200k", "JPEG", 2000, 3000, 200_704),
    ("jpeg-1024x768-200k", "JPEG", 768, 1024, 200_704),
]


@functools.lru_cache(maxsize=None)
def _photo(height: int, width: int, seed: int) -> np.ndarray:
    """A natural photo (scikit-image's CC0 set) resized to the case's size, else a synthetic texture."""
    try:
        from skimage import data

        base = [data.astronaut, data.coffee, data.chelsea, data.rocket][seed % 4]()
        return np.asarray(Image.fromarray(base).resize((width, height), Image.Resampling.LANCZOS))
    except ImportError:
        rng = np.random.default_rng(seed)
        y, x = np.mgrid[0:height, 0:width]
        img = np.stack([np.sin(x / 37.0 + seed), np.cos(y / 23.0), np.sin((x + y) / 51.0)], -1) * 100 + 127
        return np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=None)
def _encoded(height: int, width: int, seed: int, fmt: str) -> bytes:
    """Test image `seed % DISTINCT` of the case, encoded once per run (JPEG quality 90, PNG default)."""
    buf = io.BytesIO()
    Image.fromarray(_photo(height, width, seed % DISTINCT)).save(buf, format=fmt,
                                                                **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _chunks(items: list, n: int) -> list[list]:
    k = -(-len(items) // n)
    return [items[i:i + k] for i in range(0, len(items), k)]


def _threaded(fn, blobs: list[bytes], threads: int, pool: ThreadPoolExecutor | None):
    if threads == 1:
        return fn(blobs)
    parts = list(pool.map(fn, _chunks(blobs, threads)))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _contenders(max_pixels: int) -> tuple[dict, dict]:
    """name -> fn(blobs, threads, pool) returning (pixel_values, grid); plus name -> reason for unavailable ones."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    out, missing = {}, {}
    pil = Qwen2VLImageProcessorPil(max_pixels=max_pixels)

    def via(proc):
        def run(chunk):
            r = proc([Image.open(io.BytesIO(b)) for b in chunk])
            return np.asarray(r["pixel_values"]), np.asarray(r["image_grid_thw"])
        return lambda blobs, t, pool: _threaded(run, blobs, t, pool)

    out["transformers-pil"] = via(pil)
    try:
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor

        tv = Qwen2VLImageProcessor(max_pixels=max_pixels)
        tv([Image.new("RGB", (56, 56))])
        out["transformers-torchvision"] = via(tv)
    except Exception as exc:  # PyPI's torchvision fails to import beside the CPU torch ("operator torchvision::nms does not exist")
        missing["transformers-torchvision"] = f"{type(exc).__name__}: {str(exc)[:120]}"
    out["pillow-numpy"] = lambda blobs, t, pool: _threaded(
        lambda c: preprocess_ref(c, max_pixels=max_pixels), blobs, t, pool)
    for name, kw in (("native-exact", {}), ("native-approx", {"approx": True}), ("native-uint8", {"dtype": "uint8"})):
        def run(blobs, t, pool, kw=kw):
            r = eio.preprocess(blobs, max_pixels=max_pixels, num_threads=t, **kw)
            return r.pixel_values, r.image_grid_thw
        out[name] = run
    return out, missing


def _percentiles(rates: list[float]) -> dict:
    p20, p50, p80 = np.percentile(rates, [20, 50, 80])
    return {"p20": round(float(p20), 2), "p50": round(float(p50), 2), "p80": round(float(p80), 2)}


def bench_case(case, threads: int, rounds: int) -> dict:
    name, fmt, h, w, max_pixels = case
    batch = max(4, 2 * threads)
    blobs = [_encoded(h, w, s, fmt) for s in range(batch)]
    contenders, missing = _contenders(max_pixels)
    # The exact contract, checked on this case's data before timing it.
    ref_pv, ref_grid = contenders["transformers-pil"](blobs[:2], 1, None)
    nat_pv, nat_grid = contenders["native-exact"](blobs[:2], 1, None)
    exact = bool(np.array_equal(ref_grid, nat_grid) and np.array_equal(ref_pv, nat_pv))
    rates = {k: [] for k in contenders}
    with ThreadPoolExecutor(threads) as pool:
        for fn in contenders.values():  # warm-up (imports, first allocations)
            fn(blobs[:threads], threads, pool)
        for _ in range(rounds):
            for k, fn in contenders.items():
                t0 = time.perf_counter()
                fn(blobs, threads, pool)
                rates[k].append(batch / (time.perf_counter() - t0))
    stats = {k: _percentiles(v) for k, v in rates.items()}
    baseline = max(stats[k]["p50"] for k in stats if k.startswith("transformers"))
    return {
        "case": name, "threads": threads, "batch": batch, "rounds": rounds, "bit_identical_to_transformers": exact,
        "images_per_s": stats, "unavailable": missing,
        "speedup_vs_fastest_transformers": {k: round(stats[k]["p50"] / baseline, 2) for k in stats},
    }


def patchify_ms_per_output_mp(repeats: int = 15) -> dict:
    """Normalise + patchify alone: arrays already at their smart_resize size (812x1204, a multiple of 28) skip
    decoding and resizing. Into a fresh output array (each freed before the next call, so after the first the
    extension's output cache serves it from the freed block) and into a reused buffer (`out=`); wall and CPU
    (process) time, one thread, float32. bench_normalize_patchify.py breaks this down by dtype, adds the cold
    first-call cost (new memory: page faults and zeroing) and compares builds side by side."""
    arrays = [_photo(812, 1204, s) for s in range(4)]
    mp = 4 * 812 * 1204 / 1e6
    buf = np.empty_like(eio.preprocess(arrays, num_threads=1).pixel_values)
    res = {"output_megapixels": round(mp, 3)}
    for label, out in (("fresh", None), ("reused_out", buf)):
        wall, cpu = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            eio.preprocess(arrays, num_threads=1, out=out)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        for kind, ts in (("wall", wall), ("cpu", cpu)):
            p20, p50, p80 = (round(float(v) * 1e3 / mp, 3) for v in np.percentile(ts, [20, 50, 80]))
            res[f"{label}_{kind}_ms_per_mp"] = {"p20": p20, "p50": p50, "p80": p80}
    return res


_PEAK_CHILD = """
import json, sys
from pathlib import Path
import evoquality.io as eio
def kib(field):
    return next(int(l.split()[1]) for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field))
paths, threads = sys.argv[2:], int(sys.argv[1])
rss0 = kib("VmRSS")
r = eio.preprocess(paths, max_pixels=1_003_520, num_threads=threads)
print(json.dumps({"rss0_kib": rss0, "hwm_kib": kib("VmHWM"), "output_bytes": r.pixel_values.nbytes}))
"""


def peak_memory(tmp: Path) -> dict:
    """Peak RSS growth of a fresh process during preprocess (inputs read from files inside the call), over the
    output's size. A fresh process, because a warm allocator reuses freed memory and hides the peak."""
    out = {}
    for label, n, threads in (("1 image, 1 thread", 1, 1), ("8 images, 2 threads", 8, 2)):
        paths = []
        for s in range(n):
            p = tmp / f"peak-{s}.jpg"
            p.write_bytes(_encoded(2000, 3000, s, "JPEG"))
            paths.append(str(p))
        out[label] = peak_growth(_PEAK_CHILD, [str(threads), *paths], digits=1)
    return out


def peak_growth(child_code: str, args: list[str], digits: int = 1) -> dict:
    """Run `child_code` in a fresh interpreter; it prints JSON with rss0_kib, hwm_kib (VmHWM) and output_bytes.
    Returns the peak resident growth over the output's size, or {"error": ...} when the child failed."""
    proc = subprocess.run([sys.executable, "-c", child_code, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr[-300:]}
    m = json.loads(proc.stdout)
    growth = (m["hwm_kib"] - m["rss0_kib"]) * 1024
    return {"output_mb": round(m["output_bytes"] / 2**20, digits), "peak_growth_mb": round(growth / 2**20, digits),
            "ratio": round(growth / m["output_bytes"], digits + 1)}


def approx_error() -> dict:
    res = {}
    for name, h, w, mp in (("3000x2000 @1M", 2000, 3000, 1_003_520), ("3000x2000 @200k", 2000, 3000, 200_704),
                           ("1024x768 @200k", 768, 1024, 200_704)):
        blobs = [_encoded(h, w, s, "JPEG") for s in range(4)]
        exact = eio.preprocess(blobs, max_pixels=mp, dtype="uint8").pixel_values.astype(np.int16)
        approx = eio.preprocess(blobs, max_pixels=mp, dtype="uint8", approx=True).pixel_values.astype(np.int16)
        d = np.abs(exact - approx)
        res[name] = {"mean_abs_lsb": round(float(d.mean()), 3), "max_abs_lsb": int(d.max()),
                     "p99_abs_lsb": float(np.percentile(d, 99))}
    return res


def environment() -> dict:
    import importlib.metadata as md

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    versions = {"python": platform.python_version()}
    for pkg in ("evoquality", "transformers", "pillow", "numpy", "torch"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    ext = _backend.native_extension()
    versions.update(ext.versions() if ext is not None else {})
    try:
        root = Path(__file__).resolve().parent.parent
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        dirty = subprocess.run(["git", "diff", "--quiet", "--", "csrc", "python/evoquality/io"], cwd=root).returncode
        commit = rev.stdout.strip() + (" (dirty)" if dirty else "") if rev.returncode == 0 else "unknown"
    except OSError:
        commit = "unknown"
    return {"device": {"cpu": cpu, "cores_usable": eio.default_num_threads(), "machine": platform.machine()},
            "versions": versions, "commit": commit, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def to_markdown(report: dict) -> str:
    env = report["environment"]
    lines = ["# Image pipeline benchmark", "",
             f"- device: {env['device']['cpu']} ({env['device']['cores_usable']} usable cores)",
             f"- commit: {env['commit']}, date: {env['date']}",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()), "",
             "images/s p50 [p20-p80]; speedup = p50 / fastest transformers p50 at the same thread count", "",
             "| case | threads | contender | images/s | speedup | exact |", "|---|---|---|---|---|---|"]
    for c in report["cases"]:
        for k, s in c["images_per_s"].items():
            exact = ("yes" if c["bit_identical_to_transformers"] else "NO") if k == "native-exact" else ""
            lines.append(f"| {c['case']} | {c['threads']} | {k} | {s['p50']} [{s['p20']}-{s['p80']}] | "
                         f"{c['speedup_vs_fastest_transformers'][k]}x | {exact} |")
        for k, why in c["unavailable"].items():
            lines.append(f"| {c['case']} | {c['threads']} | {k} | unavailable: {why} | | |")
    for key in ("patchify_ms_per_output_mp", "peak_memory", "approx_error", "skipped"):
        if key in report:
            lines += ["", f"## {key}", "", "```", json.dumps(report[key], indent=1), "```"]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="directory for the JSON and markdown results")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=15, help="round-robin rounds per case (>= 15 for a recorded result)")
    parser.add_argument("--time-budget", type=float, default=100.0,
                        help="seconds; cases not started by then are listed as skipped")
    parser.add_argument("--cases", nargs="+", default=[c[0] for c in CASES], choices=[c[0] for c in CASES])
    return parser


def measure(args: argparse.Namespace) -> dict:
    """Measure what `args` asks for and return the report (also written to args.out after every case)."""
    if not eio.native_available():
        raise RuntimeError("evoquality._native is not built")
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    report = {"environment": environment(), "cases": [], "skipped": []}

    def save():
        (args.out / "bench_image_pipeline.json").write_text(json.dumps(report, indent=1))
        (args.out / "bench_image_pipeline.md").write_text(to_markdown(report))

    report["patchify_ms_per_output_mp"] = patchify_ms_per_output_mp()
    report["approx_error"] = approx_error()
    with tempfile.TemporaryDirectory() as tmp:
        report["peak_memory"] = peak_memory(Path(tmp)) if Path("/proc/self/status").exists() else "needs Linux /proc"
    save()
    for case in (c for c in CASES if c[0] in args.cases):
        for threads in args.threads:
            if time.perf_counter() - t_start > args.time_budget:
                report["skipped"].append(f"{case[0]} threads={threads}: time budget")
                continue
            report["cases"].append(bench_case(case, threads, args.rounds))
            save()
            print(f"{case[0]} threads={threads}: " + ", ".join(
                f"{k} {v['p50']}" for k, v in report["cases"][-1]["images_per_s"].items()), flush=True)
    save()
    return report


def rows_of(report: dict) -> list[dict]:
    """Rows of a report: per case and thread count, every provider in seconds per image (from its images/s
    percentiles) against the fastest transformers processor of that case; then normalise + patchify."""
    out = []
    for c in report["cases"]:
        rates = c["images_per_s"]
        anchor = max((k for k in rates if k.startswith("transformers")), key=lambda k: rates[k]["p50"])
        shape = f"{c['case']} batch={c['batch']} threads={c['threads']}"
        timings = {k: spread(1 / r["p80"], 1 / r["p50"], 1 / r["p20"], c["rounds"]) for k, r in rates.items()}
        exact = "bit-identical to transformers: " + ("yes" if c["bit_identical_to_transformers"] else "NO")
        out += side_by_side("image_preprocess", shape, timings, anchor=anchor, work=1, unit="images/s",
                            notes={"native-exact": exact})
        out += [row("image_preprocess", k, shape, status="skipped", note=why) for k, why in c["unavailable"].items()]
    patchify = report.get("patchify_ms_per_output_mp", {})
    for mode in ("fresh", "reused_out"):
        if f"{mode}_wall_ms_per_mp" in patchify:
            ms = patchify[f"{mode}_wall_ms_per_mp"]
            out.append(row("normalize_patchify", "native-exact", f"4x 812x1204, {mode} output, 1 thread",
                           spread(ms["p20"] / 1e3, ms["p50"] / 1e3, ms["p80"] / 1e3),
                           note="ms per output megapixel (wall); target <= 3"))
    out += [row("image_preprocess", "", s.split(":")[0], status="skipped", note=s.split(": ", 1)[-1])
            for s in report.get("skipped", [])]
    return out


def run(argv: list[str] | None = None) -> list[dict]:
    """Measure what argv asks for (DIR's report files rewritten after every case) and return the rows."""
    args = build_parser().parse_args(argv)
    if not eio.native_available():
        raise _rows.Skip("evoquality._native is not built (`pip install -e .` builds it)")
    return _rows.stamp(rows_of(measure(args)), "cpu")


def main(argv=None) -> int:
    return _rows.main_of(run, argv)


if __name__ == "__main__":
    sys.exit(main())
