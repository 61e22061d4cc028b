"""Where the toy's held-out SRCC is capped: four diagnostics of the embedded default (CPU, minutes each).

    python benchmarks/toy_ceiling.py features --out DIR
        Linear probe of the toy base model's vision features (the unit-normalised mean of the merged visual tokens,
        as in its vision pretraining): a pairwise-logistic ranking fitted on the pool's distortion series, scored by
        the held-out L-test (mean SRCC per series). What the frozen features alone could give.
    python benchmarks/toy_ceiling.py sft --out DIR --steps 100,300 --lr 1e-4 [--pool-crops 8]
        Supervised fine-tuning of the scoring prompt on the pool with the hidden truth (the toy MOS as the answer),
        the held-out report after each listed step: the supervised upper bound of learning from the pool's content.
    python benchmarks/toy_ceiling.py crossphoto --out FILE [--samples 32] RUN_DIR [RUN_DIR ...]
        The held-out report of every round's checkpoint of finished `evoquality evolve` runs, on crops of photos
        neither the warm-up nor the evolution ever saw (`CROSS_PHOTOS`), instead of the held-out half of the pool's
        photos: how much of each round transfers to new content.
    python benchmarks/toy_ceiling.py photos --out FILE [--samples 32] RUN_DIR [RUN_DIR ...]
        The held-out benchmark of every round's checkpoint of finished runs, broken down by photo: each photo's
        L-test, the share of its images whose mean sampled score sits on the scale's floor (<= `FLOOR`), and its mean
        score per distortion type and level. Where a round's SRCC goes: a photo whose every image the model scores
        1 has no order left to rank.

All four read the hidden truth: they are diagnostics beside the method, never part of it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np


def _series_ltest(scores, series, levels) -> float:
    """Mean SRCC of score vs -level over the series: the held-out report's L-test (`evaluation.protocol.l_test`) on
    plain arrays. Images without a score (NaN) are left out; a series with fewer than 2 scored images or levels is
    skipped, and one whose scores are all equal counts as 0 (no order left)."""
    from scipy.stats import spearmanr

    scores, series, levels = np.asarray(scores, dtype=np.float64), np.asarray(series), np.asarray(levels)
    values = []
    for s in np.unique(series):
        idx = (series == s) & np.isfinite(scores)
        if idx.sum() < 2 or len(set(levels[idx].tolist())) < 2:
            continue
        values.append(0.0 if np.ptp(scores[idx]) == 0 else float(spearmanr(scores[idx], -levels[idx]).statistic))
    return float(np.mean(values)) if values else float("nan")


def _pool(run: Path):
    from evoquality.toy import datasets

    datasets.write_pool(run)
    truth = sorted(datasets.read_truth(run).items())
    return ([p for p, _ in truth], [f"{t['content']}/{t['dist_type']}" for _, t in truth],
            [t["level"] for _, t in truth])


def _heldout(run: Path):
    from evoquality.data.manifest import read_manifest
    from evoquality.toy import datasets

    m = read_manifest(datasets.write_heldout(run))
    return ([m.image_path(r) for r in m.records], [f"{r.ref}/{r.dist_type}" for r in m.records],
            [r.level for r in m.records])


def features(out: Path) -> dict:
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from evoquality.modeling import load_policy
    from evoquality.toy.base_model import SHIPPED

    policy = load_policy(SHIPPED, device="cpu", dtype="float32")
    visual, image_processor = policy.model.model.visual, policy.processor.image_processor

    @torch.no_grad()
    def embed(paths):
        rows = []
        for k in range(0, len(paths), 60):
            images = [Image.open(p).convert("RGB") for p in paths[k:k + 60]]
            batch = image_processor(images=images, return_tensors="pt")
            tokens = visual(batch["pixel_values"], grid_thw=batch["image_grid_thw"]).pooler_output
            rows.append(F.normalize(tokens, dim=-1).view(len(images), -1, tokens.shape[-1]).mean(1))
        return torch.cat(rows)

    def fit(x, series, levels, steps=2000):
        pairs = [(i, j) for i in range(len(series)) for j in range(len(series))
                 if series[i] == series[j] and levels[i] < levels[j]]
        better, worse = torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs])
        w = torch.zeros(x.shape[1], requires_grad=True)
        opt = torch.optim.Adam([w], lr=1e-2)
        for _ in range(steps):
            s = x @ w
            loss = F.softplus(-(s[better] - s[worse])).mean() + 1e-3 * w.square().sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return w.detach()

    (pp, ps, pl), (hp, hs, hl) = _pool(out), _heldout(out)
    xp, xh = embed(pp), embed(hp)
    w_pool, w_held = fit(xp, ps, pl), fit(xh, hs, hl)
    return {"pool_fit_on_pool": _series_ltest((xp @ w_pool).tolist(), ps, pl),
            "pool_fit_on_heldout": _series_ltest((xh @ w_pool).tolist(), hs, hl),
            "heldout_fit_on_heldout": _series_ltest((xh @ w_held).tolist(), hs, hl),
            "n_pool": len(pp), "n_heldout": len(hp)}


def sft(out: Path, steps: list[int], lr: float, batch: int = 16, seed: int = 0) -> dict:
    import torch
    from PIL import Image

    from evoquality.modeling import load_policy
    from evoquality.prompts import score_messages
    from evoquality.toy import report, world
    from evoquality.toy.base_model import SHIPPED, _sft_batch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    paths, _, levels = _pool(out)
    images = [Image.open(p).convert("RGB") for p in paths]
    policy = load_policy(SHIPPED, device="cpu", dtype="float32")
    model, processor = policy.model, policy.processor
    vision = list(model.model.visual.parameters())
    vision_ids = {id(p) for p in vision}
    # The warm-up's own split: the pretrained tower moves 10x slower than the language model.
    opt = torch.optim.AdamW([{"params": [p for p in model.parameters() if id(p) not in vision_ids], "lr": lr},
                             {"params": vision, "lr": lr / 10}])
    model.train()
    rows = {}
    for step in range(1, max(steps) + 1):
        examples = [(score_messages(), [images[k]], f"\\boxed{{{world.quality(levels[k]):.2f}}}")
                    for k in rng.choice(len(images), batch)]
        loss = model(**_sft_batch(processor, processor.tokenizer, examples)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step in steps:
            ckpt = out / f"sft-step{step}"
            model.save_pretrained(ckpt)
            for f in SHIPPED.iterdir():  # the processor files of the checkpoint it started from
                if f.suffix in (".json", ".jinja") and not (ckpt / f.name).exists():
                    shutil.copy(f, ckpt / f.name)
            model.eval()
            rows[step] = {"answer_loss": round(loss.item(), 4), **report.heldout_metrics(ckpt, out)}
            model.train()
            print(f"[toy_ceiling] sft step {step}: {rows[step]}", flush=True)
    return {"lr": lr, "batch": batch, "n_pool": len(paths), "steps": rows}


# Bundled scikit-image photos outside the toy world (warm-up and evolution photos alike): an object, a stained
# tissue texture, a grey surface.
CROSS_PHOTOS = ("clock", "immunohistochemistry", "moon")
CROSS_CROPS_PER_PHOTO = 20  # 3 photos x 20 crops x 2 types x 5 levels = 600 images, as many as the held-out set


def crossphoto(out_file: Path, runs: list[Path], n_samples: int) -> dict:
    from evoquality.toy import datasets, report, world

    overlap = set(CROSS_PHOTOS) & (set(world.WARMUP_PHOTOS) | set(world.EVOLUTION_PHOTOS))
    assert not overlap, f"cross-photo benchmark photos {overlap} are in the toy world"
    # The held-out writer with other photos, whole: a benchmark folder of its own beside the output file.
    world.EVOLUTION_PHOTOS, world.HELDOUT_HALF = CROSS_PHOTOS, None
    datasets.HELDOUT_CROPS_PER_PHOTO = CROSS_CROPS_PER_PHOTO
    bench = out_file.parent / (out_file.stem + "-bench")
    return _each_checkpoint(out_file, runs,
                            lambda ckpt, run: report.heldout_metrics(ckpt, bench, n_samples=n_samples))


def _each_checkpoint(out_file: Path, runs: list[Path], measure) -> dict:
    """measure(checkpoint, run) -> row, for the base model (once) and every finished round of each run. The rows are
    kept in out_file (JSON), so a checkpoint already there is not scored again; returns all of them."""
    from evoquality.toy.base_model import SHIPPED

    rows = json.loads(out_file.read_text()) if out_file.is_file() else {}
    for run in runs:
        for t in range(10):
            ckpt = SHIPPED if t == 0 else run / f"round_{t:02d}" / "train" / "model"
            key = "base" if t == 0 else f"{run.name}/round {t}"
            if key in rows:
                continue
            if not (ckpt / "config.json").is_file():
                break
            rows[key] = measure(ckpt, run)
            out_file.write_text(json.dumps(rows, indent=1))
            floored = ", ".join(f"{k} {v['floor_share']:.2f}" for k, v in rows[key].get("photos", {}).items()
                                if v["floor_share"] > 0.5)
            print(f"[toy_ceiling] {key}: srcc {rows[key]['srcc']:.3f}"
                  + (f", on the floor: {floored}" if floored else ""), flush=True)
    return rows


FLOOR = 1.1  # a held-out image whose mean sampled score is at most this sits on the floor of the 1-5 scale


def photo_summary(photos, types, levels, series, scores, floor: float = FLOOR) -> dict:
    """Per photo: the L-test of its series, the share of its images scored at most `floor` (the mean of the sampled
    scores; an image without a score is not on the floor), and its mean score per distortion type and level."""
    photos, types, levels, series = map(np.asarray, (photos, types, levels, series))
    scores = np.asarray(scores, dtype=np.float64)
    out = {}
    for name in dict.fromkeys(photos.tolist()):
        m = photos == name
        by_level = {}
        for t in dict.fromkeys(types[m].tolist()):
            cells = [scores[m & (types == t) & (levels == lv)] for lv in sorted(set(levels[m].tolist()))]
            by_level[t] = [round(float(np.nanmean(c)), 3) if np.isfinite(c).any() else None for c in cells]
        out[name] = {"srcc": _series_ltest(scores[m], series[m], levels[m]),
                     "floor_share": float(np.mean(scores[m] <= floor)), "mean_by_level": by_level}
    return out


def photos(out_file: Path, runs: list[Path], n_samples: int) -> dict:
    from evoquality.toy import report

    def measure(ckpt, run) -> dict:
        manifest, result = report.heldout_scores(ckpt, run, n_samples=n_samples)
        recs, scores = manifest.records, result.sampled
        series, levels = [f"{r.ref}/{r.dist_type}" for r in recs], [r.level for r in recs]
        per_photo = photo_summary([r.ref.split("#")[0] for r in recs], [r.dist_type for r in recs], levels, series,
                                  scores)
        return {"srcc": _series_ltest(scores, series, levels),
                "floor_share": float(np.mean(np.asarray(scores) <= FLOOR)), "photos": per_photo}

    return _each_checkpoint(out_file, runs, measure)


def main(argv=None) -> int:
    from evoquality.toy.report import HELDOUT_SAMPLES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    f = sub.add_parser("features")
    f.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("sft")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--steps", default="100,300")
    s.add_argument("--lr", type=float, default=1e-4)
    s.add_argument("--pool-crops", type=int, default=None, help="crops per pool photo (default: the toy's)")
    for name in ("crossphoto", "photos"):  # both score the checkpoints of finished runs
        c = sub.add_parser(name)
        c.add_argument("--out", type=Path, required=True, help="a JSON file, extended on every run")
        c.add_argument("--samples", type=int, default=HELDOUT_SAMPLES,
                       help="sampled answers per image (default: the runs' own report's N)")
        c.add_argument("runs", type=Path, nargs="+")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    t0 = time.monotonic()
    if args.what in ("crossphoto", "photos"):
        args.out.parent.mkdir(parents=True, exist_ok=True)
        (crossphoto if args.what == "crossphoto" else photos)(args.out, args.runs, args.samples)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    if args.what == "features":
        result = features(args.out)
    else:
        if args.pool_crops:
            from evoquality.toy import datasets

            datasets.POOL_CROPS_PER_PHOTO = args.pool_crops
        result = sft(args.out, [int(x) for x in args.steps.split(",")], args.lr)
    result["wall_s"] = round(time.monotonic() - t0, 1)
    (args.out / f"{args.what}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result), file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
