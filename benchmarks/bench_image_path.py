"""Image time of stage 1 and stage 2, path to `pixel_values`, before and after images got one path (issue 15).

    python benchmarks/bench_image_path.py --out DIR [--before TREE] [--rounds 3] [--reps 4] [--cases toy,photo-1mp]

Two operations, each on every case's images, as the code makes them call for call (the model is not run):
- `stage1-image`: one labelling batch of `--pairs` pairs among `--images` images: every request shows a pair in one
  order, both orders per pair, and `generate` takes `--chunk` requests per processor call (LabelConfig's
  batch_items and generation_batch_size). Before: `runner._ImageCache` decodes each image to a PIL image (native
  decode, then Pillow), and every processor call converts its images back to arrays and resizes them again. After:
  `TransformersBackend.prepare_images` reads and probes each file, decodes and resizes them all in one native batch
  call, and the processor calls are served from its cache by path.
- `stage2-image`: one GRPO step of `--images` images x `--rollouts` G: the dataset rows TRL 1.16 fetches (the
  sampler repeats each image G times), TRL's `prepare_multimodal_messages` and per-batch `copy.deepcopy` of the
  prompts, then its two processor calls over all rollouts (generation and the training forward). Before: rows carry
  PIL images from `ImageStore` (decoded in the data loader, a `__deepcopy__` patched onto each) and the cache is
  keyed by the id stamped into them. After: rows carry paths and the cache decodes each once per step. Every step
  uses new images (a pool of one step's images per timed step), as training moves through its pairs.
Cases: `toy` (112x112 PNG crops of scikit-image's photos, the toy world's size) and `photo-1mp` (scikit-image's
`astronaut` and `chelsea` upscaled to about 1 megapixel, JPEG quality 90), written to a temporary folder; the image
processor is Qwen2.5-VL's (min_pixels 3136, max_pixels 12845056: a 1-MP photo keeps its size).

Providers: `after` (this checkout) and `before` (the anchor): the same calls through the modules of `--before TREE`,
a checkout of the code before the change (`git worktree add /tmp/ip-before 466bec0`, then copy the built
extension into it: `cp $(python -c 'import evoquality._native as n; print(n.__file__)') /tmp/ip-before/python/
evoquality/`). Each provider runs in its own process (the before one imports `evoquality` from TREE/python instead of
this checkout), `--rounds` times in alternating order, `--reps` timed repetitions after one warm-up each time.
Without `--before`, its rows are skipped rows saying so. Writes DIR/bench_image_path.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _rows  # noqa: E402
from _timing import percentiles  # noqa: E402

PROVIDERS = ("after", "before")
ANCHOR = "before"
CASES = ("toy", "photo-1mp")
OPS = ("stage1-image", "stage2-image")
QWEN25_VL_PIXELS = dict(shortest_edge=3136, longest_edge=12845056)  # Qwen2.5-VL's preprocessor_config.json
LABEL_MAX_PIXELS = 40_000_000  # LabelConfig.max_image_pixels' default


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="folder for bench_image_path.json")
    ap.add_argument("--before", type=Path, default=None,
                    help="a checkout of the code before (its python/evoquality holding a built _native)")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {','.join(CASES)}")
    ap.add_argument("--images", type=int, default=16, help="unique images per labelling batch / training step")
    ap.add_argument("--pairs", type=int, default=16, help="pairs per labelling batch (LabelConfig.batch_items)")
    ap.add_argument("--chunk", type=int, default=8,
                    help="requests per processor call in stage 1 (LabelConfig.generation_batch_size)")
    ap.add_argument("--rollouts", type=int, default=8, help="rollouts per image in stage 2 (G)")
    ap.add_argument("--rounds", type=int, default=3, help="processes per provider, in alternating order")
    ap.add_argument("--reps", type=int, default=4, help="timed repetitions per round (after one warm-up)")
    ap.add_argument("--worker", choices=PROVIDERS, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    return ap


# ------------------------------------------------------------------------------------------------------ images
def write_images(folder: Path, case: str, count: int) -> list[str]:
    """`count` image files of `case` (distinct files: each training step reads images it has not seen)."""
    import numpy as np
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    photos = [data.astronaut(), data.chelsea(), data.coffee()]
    paths = []
    for k in range(count):
        photo = photos[k % len(photos)]
        if case == "toy":
            rng = np.random.default_rng(k)
            y, x = (int(rng.integers(0, s - 112)) for s in photo.shape[:2])
            image, name = Image.fromarray(photo[y : y + 112, x : x + 112]), f"toy{k:04d}.png"
        else:
            h, w = photo.shape[:2]
            scale = (1_000_000 / (h * w)) ** 0.5
            size = (round(w * scale) + k % 3, round(h * scale))  # files differ a little, as photos do
            image, name = Image.fromarray(photo).resize(size, Image.Resampling.BICUBIC), f"photo{k:04d}.jpg"
        path = folder / name
        image.save(path, quality=90) if name.endswith(".jpg") else image.save(path)
        paths.append(str(path))
    return paths


def labelling_requests(n_images: int, n_pairs: int) -> list[tuple[int, int]]:
    """The image indices of each request of one labelling batch: each pair in both orders, pair after pair."""
    import numpy as np

    rng = np.random.default_rng(0)
    pairs = set()
    while len(pairs) < n_pairs:
        i, j = (int(v) for v in rng.choice(n_images, 2, replace=False))
        pairs.add((min(i, j), max(i, j)))
    return [order for i, j in sorted(pairs) for order in ((i, j), (j, i))]


# ----------------------------------------------------------------------------------------------------- workers
def _image_processor():
    from evoquality.io import NativeQwen2VLImageProcessor

    return NativeQwen2VLImageProcessor(size=QWEN25_VL_PIXELS)


def stage1_before(paths: list[str], requests: list[tuple[int, int]], chunk: int):
    """runner._ImageCache + build_inputs' processor calls at 466bec0: decoded PIL images into every call."""
    from evoquality.labelling.runner import _ImageCache

    processor = _image_processor()
    pool = SimpleNamespace(paths=paths)

    def batch():
        images = _ImageCache(pool, LABEL_MAX_PIXELS)
        shown = [[images.get(i)[0], images.get(j)[0]] for i, j in requests]
        for start in range(0, len(shown), chunk):
            processor([im for req in shown[start : start + chunk] for im in req], return_tensors="pt")
        images.clear()
    return batch


def stage1_after(paths: list[str], requests: list[tuple[int, int]], chunk: int):
    """TransformersBackend.prepare_images, then the processor calls served by path."""
    from evoquality.labelling.backends import TransformersBackend

    policy = SimpleNamespace(processor=SimpleNamespace(image_processor=_image_processor()))
    backend = TransformersBackend(policy)
    processor = policy.processor.image_processor

    def batch():
        prepared = backend.prepare_images([paths[x] for req in requests for x in req], max_pixels=LABEL_MAX_PIXELS)
        shown = [[prepared[paths[i]].image, prepared[paths[j]].image] for i, j in requests]
        for start in range(0, len(shown), chunk):
            processor([im for req in shown[start : start + chunk] for im in req], return_tensors="pt")
    return batch


def _trl_step(rows: list[dict], processor) -> None:
    """What TRL 1.16's GRPOTrainer does with one generation batch's images: it builds the prompts with the images
    in their content blocks, deep-copies them (`_generate`), and calls the processor for generation
    (`_tokenize_prompts`) and for the training forward (`_generate_and_score_completions`)."""
    from trl.data_utils import prepare_multimodal_messages

    prompts = [prepare_multimodal_messages(row["prompt"], images=row["images"]) for row in rows]
    copy.deepcopy(prompts)
    images = [row["images"] for row in rows]
    processor(images, return_tensors="pt")
    processor(images, return_tensors="pt")


def _pairs_of(paths: list[str]):
    from evoquality.training.data import pairs_from_records

    return pairs_from_records([{"image_i": paths[k], "image_j": paths[k + 1], "p_star": 1.0}
                               for k in range(0, len(paths) - 1, 2)])


def stage2_before(paths: list[str], per_step: int, rollouts: int):
    """ImageStore (PIL rows, `__deepcopy__` patched on each) + the id-keyed CachedImageProcessor at 466bec0."""
    from evoquality.training.data import ImageStore, build_dataset
    from evoquality.training.preprocess_cache import CachedImageProcessor

    store = ImageStore(capacity=2 * per_step)
    dataset = build_dataset(_pairs_of(paths), store)
    processor = CachedImageProcessor(_image_processor())
    return _stepper(dataset, processor, per_step, rollouts)


def stage2_after(paths: list[str], per_step: int, rollouts: int):
    """Path rows + the path-keyed CachedImageProcessor."""
    from evoquality.io.preprocess_cache import CachedImageProcessor
    from evoquality.training.data import build_dataset

    dataset = build_dataset(_pairs_of(paths))
    processor = CachedImageProcessor(_image_processor())
    return _stepper(dataset, processor, per_step, rollouts)


def _stepper(dataset, processor, per_step: int, rollouts: int):
    state = {"step": 0}

    def step():
        first = state["step"] * per_step
        state["step"] += 1
        processor.clear()  # the trainer's, at every generation batch
        rows = [dataset[first + k] for k in range(per_step) for _ in range(rollouts)]  # RepeatSampler's layout
        _trl_step(rows, processor)
    return step


def worker(args) -> dict:
    """Time every case of `args.data` (written by the parent) with this process's code; samples in seconds."""
    import torch

    torch.set_num_threads(1)
    spec = json.loads(args.data.read_text())
    stage1 = stage1_before if args.worker == "before" else stage1_after
    stage2 = stage2_before if args.worker == "before" else stage2_after
    out = {}
    for case, files in spec["cases"].items():
        requests = labelling_requests(spec["images"], spec["pairs"])
        batch = stage1(files[: spec["images"]], requests, spec["chunk"])
        step = stage2(files, spec["images"], spec["rollouts"])
        samples = {"stage1-image": [], "stage2-image": []}
        for op, fn in (("stage1-image", batch), ("stage2-image", step)):
            fn()  # warm-up
            for _ in range(spec["reps"]):
                t0 = time.perf_counter()
                fn()
                samples[op].append(time.perf_counter() - t0)
        out[case] = samples
    return out


def _redirect_imports(tree: Path) -> None:
    """Import `evoquality` from TREE/python instead of the editable install of this checkout."""
    sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith("_editable")]
    sys.path.insert(0, str(tree / "python"))


# ------------------------------------------------------------------------------------------------------ parent
def _run_worker(provider: str, data: Path, before: Path | None) -> dict:
    cmd = [sys.executable, __file__, "--worker", provider, "--data", str(data)]
    if provider == "before":
        cmd += ["--before", str(before)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{provider} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _shape(case: str, op: str, args) -> str:
    what = "112x112 PNG" if case == "toy" else "~1 MP JPEG"
    if op == "stage1-image":
        return f"{case}: {what}, {args.pairs} pairs among {args.images} images, {args.chunk} requests per call"
    return f"{case}: {what}, {args.images} images x {args.rollouts} rollouts per step"


def run(argv=None) -> list[dict]:
    args = build_parser().parse_args(argv)
    if args.worker:
        raise SystemExit("--worker is internal")
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if not cases or any(c not in CASES for c in cases):
        raise SystemExit(f"--cases must name some of {', '.join(CASES)}, got {args.cases!r}")
    before_missing = None
    if args.before is None:
        before_missing = "no --before TREE given (a checkout of the code before, see the module's doc)"
    elif not list((args.before / "python" / "evoquality").glob("_native*.so")):
        before_missing = f"{args.before}/python/evoquality holds no built _native (copy it in, see the module's doc)"
    providers = ["after"] + ([] if before_missing else ["before"])
    samples: dict = {p: {} for p in providers}
    with tempfile.TemporaryDirectory(prefix="bench-image-path-") as tmp:
        per_case = args.images * (args.reps + 1)  # distinct images for every stage-2 step of one round
        files = {case: write_images(Path(tmp) / case, case, per_case) for case in cases}
        data = Path(tmp) / "spec.json"
        data.write_text(json.dumps({"cases": files, "images": args.images, "pairs": args.pairs, "chunk": args.chunk,
                                    "rollouts": args.rollouts, "reps": args.reps}))
        for r in range(args.rounds):
            for provider in providers if r % 2 == 0 else providers[::-1]:
                for case, ops in _run_worker(provider, data, args.before).items():
                    for op, xs in ops.items():
                        samples[provider].setdefault((case, op), []).extend(xs)
    rows = []
    for case in cases:
        for op in OPS:
            timings = {p: percentiles(samples[p][(case, op)]) for p in providers}
            rows += _rows.side_by_side(op, _shape(case, op, args), timings, anchor=ANCHOR, work=args.images,
                                       unit="images/s")
            if before_missing:
                rows.append(_rows.row(op, "before", _shape(case, op, args), status="skipped", note=before_missing))
    rows = _rows.stamp(rows, "cpu")
    _rows.save(args.out, "bench_image_path", rows, before_tree=str(args.before) if args.before else None,
               settings={k: getattr(args, k) for k in ("images", "pairs", "chunk", "rollouts", "rounds", "reps")})
    return rows


def main(argv=None) -> int:
    args, _ = build_parser().parse_known_args(argv)
    if args.worker:
        if args.worker == "before":
            _redirect_imports(args.before)
        print(json.dumps(worker(args)))
        return 0
    return _rows.main_of(run, argv)


if __name__ == "__main__":
    sys.exit(main())
