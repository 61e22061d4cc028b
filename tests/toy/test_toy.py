"""The toy world of the embedded default: pool and held-out crops from opposite halves of photos the warm-up never
saw, a pool that says nothing about quality, a truth the
evolution never opens, the report's label metrics checked by hand, and its figure."""

import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from evoquality.toy import datasets, report, world

# An audit hook cannot be removed: install one forwarding hook for the whole session, switched by this slot.
_AUDIT = {"hook": None}
sys.addaudithook(lambda event, args: _AUDIT["hook"] and _AUDIT["hook"](event, args))


def test_warmup_photos_are_not_evolution_photos_and_variants_deterministic():
    assert not set(world.WARMUP_PHOTOS) & set(world.EVOLUTION_PHOTOS)
    photos = world.EVOLUTION_PHOTOS[:1]
    a, b = world.variants(photos, 1, seed=3), world.variants(photos, 1, seed=3)
    assert [(v.content, v.dist_type, v.level) for v in a] == [(v.content, v.dist_type, v.level) for v in b]
    assert all(x.image.tobytes() == y.image.tobytes() for x, y in zip(a, b))
    assert {v.image.size for v in a} == {(world.CROP, world.CROP)}
    assert world.quality(1) > world.quality(5)


@pytest.mark.parametrize("name", world.EVOLUTION_PHOTOS)
def test_pool_and_heldout_crops_share_no_pixel(name):
    """Each pool crop lies in one half of its photo and each held-out crop in the other: no held-out pixel was ever
    in the pool. Checked on the photo itself: every crop is found at a position inside its own half only."""
    arr = world.photo(name)
    h, w = arr.shape[:2]
    wide = w >= h
    split = (w if wide else h) // 2
    for which in (world.POOL_HALF, world.HELDOUT_HALF):
        part = world.half(arr, which)
        assert part.shape[1 if wide else 0] in (split, (w if wide else h) - split)
        for _, crop in world.crops([name], 6, seed=7, which_half=which):
            # where the crop sits in the photo: an exact match of its pixels
            hits = [(y, x) for y in range(h - world.CROP + 1) for x in range(w - world.CROP + 1)
                    if arr[y, x, 0] == crop[0, 0, 0] and np.array_equal(arr[y:y + world.CROP, x:x + world.CROP], crop)]
            assert hits
            for y, x in hits:
                lo, hi = (x, x + world.CROP) if wide else (y, y + world.CROP)
                assert (hi <= split) if which == 0 else (lo >= split)
    assert world.POOL_HALF != world.HELDOUT_HALF


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("toyrun")
    datasets.write_pool(run)
    return run


def test_pool_manifest_holds_images_and_series_only(run_dir):
    lines = [json.loads(x) for x in (run_dir / "default_pool" / "pool.jsonl").read_text().splitlines()]
    assert len(lines) == len(world.EVOLUTION_PHOTOS) * datasets.POOL_CROPS_PER_PHOTO * len(world.TYPES) * 5
    assert all(set(row) == {"image", "group"} for row in lines)
    words = ("blur", "noise", "level", "gaussian", "white", *world.EVOLUTION_PHOTOS)
    assert not any(w in row["image"] or w in row["group"] for row in lines for w in words)
    # Nothing but images and the manifest in the pool folder: the truth lives elsewhere.
    files = {p.name for p in (run_dir / "default_pool").iterdir()}
    assert files == {"images", "pool.jsonl", "COMPLETE"}
    truth = datasets.read_truth(run_dir)
    assert len(truth) == len(lines) and {t["level"] for t in truth.values()} == set(world.LEVELS)


def test_label_metrics_by_hand(run_dir, tmp_path):
    truth = datasets.read_truth(run_dir)
    by_series = {}
    for path, t in truth.items():
        by_series.setdefault((t["content"], t["dist_type"]), {})[t["level"]] = path
    (s1, s2) = list(by_series.values())[:2]
    rows = [  # (better, worse) with a correct majority; a tie; a wrong majority; a pair across series (not judged)
        {"image_i": s1[1], "image_j": s1[3], "p_star": 1.0, "votes_i": 6, "votes_j": 2, "invalid": 0},
        {"image_i": s1[4], "image_j": s1[2], "p_star": 0.5, "votes_i": 3, "votes_j": 3, "invalid": 2},
        {"image_i": s2[2], "image_j": s2[5], "p_star": 0.0, "votes_i": 1, "votes_j": 7, "invalid": 0},
        {"image_i": s1[1], "image_j": s2[1], "p_star": 1.0, "votes_i": 8, "votes_j": 0, "invalid": 0},
    ]
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "labels.jsonl").write_text("".join(json.dumps({**r, "flagged": False}) + "\n" for r in rows))
    m = report.label_metrics(labels, run_dir)
    assert m["n_pairs"] == 3
    assert m["pseudo_acc"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["vote_acc"] == pytest.approx((6 + 3 + 1) / (8 + 6 + 8))
    assert m["tie_rate"] == pytest.approx(1 / 3)
    assert m["vote_parse_fail"] == pytest.approx(2 / (8 + 8 + 8 + 8))


def test_label_metrics_judge_synthetic_pairs_by_construction(run_dir, tmp_path):
    from evoquality.labelling.pool import discover_pool

    src = discover_pool(datasets.pool_manifest(run_dir)).paths
    var = tmp_path / "round_02" / "labels" / "variants"
    blur2, blur4, noise1 = (str(var / f"0000003_{t}_{lv}.png") for t, lv in
                            (("gaussian_blur", 2), ("gaussian_blur", 4), ("white_noise", 1)))
    other = str(var / "0000004_gaussian_blur_1.png")
    rows = [  # right, right (reversed), a tie, wrong; then pairs with no order by construction
        {"image_i": src[3], "image_j": blur2, "p_star": 1.0}, {"image_i": blur4, "image_j": blur2, "p_star": 0.0},
        {"image_i": noise1, "image_j": src[3], "p_star": 0.5}, {"image_i": blur4, "image_j": src[3], "p_star": 1.0},
        {"image_i": blur2, "image_j": noise1, "p_star": 1.0}, {"image_i": src[3], "image_j": other, "p_star": 1.0},
    ]
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "labels.jsonl").write_text("".join(
        json.dumps({**r, "votes_i": 1, "votes_j": 1, "invalid": 0, "flagged": False}) + "\n" for r in rows))
    m = report.label_metrics(labels, run_dir)
    assert m["n_synthetic_pairs"] == 4 and m["synthetic_acc"] == pytest.approx((1 + 1 + 0.5 + 0) / 4)
    assert m["n_pairs"] == 0


def _series_rows(run_dir, n_series: int) -> list[dict]:
    """Every pair of the first `n_series` distortion series as label rows (canonical order: pool listing order)."""
    by_series = {}
    for path, t in datasets.read_truth(run_dir).items():
        by_series.setdefault((t["content"], t["dist_type"]), []).append(path)
    rows = []
    for paths in list(by_series.values())[:n_series]:
        for i, a in enumerate(paths):
            for b in paths[i + 1:]:
                rows.append({"image_i": a, "image_j": b, "p_star": 0.5, "votes_i": 4, "votes_j": 4, "invalid": 0,
                             "flagged": False})
    return rows


def test_control_labels_replace_p_star_by_the_truth_or_by_coins(run_dir, tmp_path):
    from evoquality.labelling.labels import read_labels, write_labels
    from evoquality.toy import controls

    rows = _series_rows(run_dir, 20)
    cross = {**rows[0], "image_j": rows[-1]["image_j"]}  # two series: no defined better image
    labels = tmp_path / "round_01" / "labels"
    labels.mkdir(parents=True)
    write_labels(labels, rows + [cross])

    oracle = controls.control_labels("oracle", labels, run_dir, seed=1)
    assert oracle == tmp_path / "round_01" / "labels_control"
    assert report.label_metrics(oracle, run_dir)["pseudo_acc"] == 1.0
    assert len(read_labels(oracle)) == len(rows)  # the cross-series pair is left out, and counted
    assert json.loads((oracle / controls.META_FILE).read_text())["left_out_undefined"] == 1
    assert read_labels(labels)[0]["p_star"] == 0.5  # the voted labels stay as they were

    coins = read_labels(controls.control_labels("coinflip", labels, run_dir, seed=1))
    p = [r["p_star"] for r in coins]
    assert set(p) == {0.0, 1.0} and len(p) == len(rows) + 1
    assert 0.4 < sum(p) / len(p) < 0.6  # 201 fair coins
    assert p == [r["p_star"] for r in read_labels(controls.control_labels("coinflip", labels, run_dir, seed=1))]
    assert p != [r["p_star"] for r in read_labels(controls.control_labels("coinflip", labels, run_dir, seed=2))]
    with pytest.raises(ValueError, match="control must be one of"):
        controls.control_labels("inverted", labels, run_dir, seed=1)


def test_evolution_never_opens_the_truth(run_dir, monkeypatch, tmp_path):
    """Run the default's stage 1 + stage 2 (one short round) under an audit hook that fails on any open of a file
    below toy_report/ — where the truth and the held-out levels live."""
    from evoquality.toy.base_model import SHIPPED
    from evoquality.training.config import make_config
    from evoquality.training.rounds import EvolveSettings, evolve

    forbidden = str((run_dir / datasets.REPORT_DIR).resolve())
    opened = []

    def hook(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes, Path)):
            path = str(Path(args[0].decode() if isinstance(args[0], bytes) else args[0]).resolve())
            if path.startswith(forbidden):
                opened.append(path)

    monkeypatch.setitem(_AUDIT, "hook", hook)
    settings = EvolveSettings(
        out=str(tmp_path / "evo"), model=str(SHIPPED), images=str(run_dir / "default_pool" / "pool.jsonl"), rounds=1,
        label={"pairs": 0, "same_content_pairs": 8, "votes": 2, "max_new_tokens": 12, "progress": False},
        train=make_config(None, {"num_generations": 2, "images_per_step": 2, "per_device_train_batch_size": 4,
                                 "max_completion_length": 12, "max_steps": 2, "save_steps": 2, "use_cpu": True,
                                 "gradient_checkpointing": False}))
    final = evolve(settings)
    _AUDIT["hook"] = None
    assert (final / "config.json").is_file()
    assert opened == []
    # The hook does fire for the truth file (the test can fail).
    _AUDIT["hook"] = hook
    datasets.read_truth(run_dir)
    _AUDIT["hook"] = None
    assert opened and opened[0].endswith(datasets.TRUTH_FILE)


def test_warmup_builder_writes_a_loadable_checkpoint_with_its_log(tmp_path):
    """The recipe behind the shipped checkpoint, cut to a few steps: same code, same outputs."""
    from evoquality.modeling import load_policy
    from evoquality.toy.base_model import MARKER, WarmupRecipe, build_toy_base_model

    recipe = WarmupRecipe(vision_steps=2, sft_steps=2, vision_pairs_per_step=2, sft_batch=2)
    out = build_toy_base_model(tmp_path / "toy", recipe, progress=False)
    log = [json.loads(x) for x in (out / "warmup_log.jsonl").read_text().splitlines()]
    assert [(r["phase"], r["step"]) for r in log] == [("vision", 2), ("sft", 2)]
    meta = json.loads((out / MARKER).read_text())
    assert meta["recipe"]["sft_steps"] == 2 and meta["n_parameters"] > 500_000
    policy = load_policy(out, device="cpu", dtype="float32")
    assert policy.model_type == "qwen2_5_vl"


def test_shipped_checkpoint_is_the_documented_recipe():
    from evoquality.toy.base_model import MARKER, SHIPPED, WarmupRecipe

    meta = json.loads((SHIPPED / MARKER).read_text())
    assert meta["recipe"] == dataclasses.asdict(WarmupRecipe())
    log = [json.loads(x) for x in (SHIPPED / "warmup_log.jsonl").read_text().splitlines()]
    assert log[-1]["phase"] == "sft" and log[-1]["step"] == WarmupRecipe().sft_steps


def test_heldout_benchmark_written_under_a_relative_run_dir_resolves(tmp_path, monkeypatch):
    """`evoquality evolve` defaults to --out evoquality-run (relative): the held-out manifest must still point at
    its images, and a run directory whose images are gone is an error, not an empty report row."""
    from evoquality.data.manifest import read_manifest
    from evoquality.toy.base_model import SHIPPED

    monkeypatch.chdir(tmp_path)
    manifest = read_manifest(datasets.write_heldout("run"))
    assert len(manifest) == len(world.EVOLUTION_PHOTOS) * datasets.HELDOUT_CROPS_PER_PHOTO * len(world.TYPES) * 5
    assert all(Path(manifest.image_path(r)).is_file() for r in manifest.records)
    Path(manifest.image_path(manifest.records[0])).unlink()
    with pytest.raises(RuntimeError, match="1 of 600 images could not be read"):
        report.heldout_metrics(SHIPPED, "run", n_samples=1)


def test_heldout_scoring_is_the_recorded_protocol(tmp_path, monkeypatch):
    """The toy figures are scored with the greedy answer and the mean of N = 32 samples (the recorded figures'
    re-scoring), 16 new tokens, batches of 30 (which also set the sampling seeds), seed 0, in float32 on CPU: the
    preset keeps that scorer."""
    import evoquality.modeling
    from evoquality.evaluation import scorers

    seen = {}

    class Built(Exception):
        pass

    def scorer(policy, **kwargs):
        seen["scorer"] = kwargs
        raise Built

    monkeypatch.setattr(evoquality.modeling, "load_policy", lambda path, **kwargs: seen.setdefault("load", kwargs))
    monkeypatch.setattr(scorers, "ModelScorer", scorer)
    with pytest.raises(Built):
        report.heldout_metrics("checkpoint", tmp_path)
    assert seen == {"load": {"device": "cpu", "dtype": "float32"},
                    "scorer": {"n_samples": 32, "mode": "greedy", "temperature": 1.0, "max_new_tokens": 16,
                               "batch_size": 30, "seed": 0}}
    assert report.HELDOUT_SAMPLES == 32


def test_a_report_row_scored_with_another_n_is_scored_again(tmp_path, monkeypatch):
    """A resumed run whose --heldout-samples changed scores its finished rows again: one report, one precision."""
    from evoquality.toy import run as toy_run
    from evoquality.training.rounds import EvolveSettings

    scored = []

    def heldout(model_dir, run_dir, *, n_samples, progress):
        scored.append((Path(model_dir).parent.parent.name or "base", n_samples))
        return {"srcc": 0.1 * n_samples, "pair_acc": 0.5, "heldout_samples": n_samples}

    monkeypatch.setattr(report, "heldout_metrics", heldout)
    monkeypatch.setattr(report, "label_metrics", lambda labels, run: {"pseudo_acc": 0.6})
    monkeypatch.setattr(toy_run, "evolve", lambda settings, label_transform: Path(settings.out) / "final")
    settings = EvolveSettings(out=str(tmp_path), model="base", images="pool", rounds=2)
    toy_run.run_default(settings, heldout_samples=8, progress=False)
    assert scored == [("base", 8), ("round_01", 8), ("round_02", 8)]
    scored.clear()
    toy_run.run_default(settings, heldout_samples=8, progress=False)
    assert scored == []  # finished and at the same N: nothing is redone
    toy_run.run_default(settings, heldout_samples=32, progress=False)
    assert scored == [("base", 32), ("round_01", 32), ("round_02", 32)]
    saved = json.loads((tmp_path / datasets.REPORT_DIR / report.REPORT_JSON).read_text())
    assert [r["srcc"] for r in saved["rows"]] == [3.2, 3.2, 3.2] and saved["settings"]["heldout_samples"] == 32
    assert all(r["pseudo_acc"] == 0.6 for r in saved["rows"][:2])
    with pytest.raises(ValueError, match="heldout_samples must be a positive int"):
        toy_run.run_default(settings, heldout_samples=0, progress=False)


def test_metrics_figure_plots_each_metric_over_integer_rounds(tmp_path):
    nan = float("nan")
    rows = [{"model": "base", "srcc": 0.2, "pair_acc": 0.6, "pseudo_acc": 0.65, "vote_acc": None},
            {"model": "round 1", "srcc": 0.3, "pair_acc": 0.62, "pseudo_acc": 0.7, "vote_acc": nan},
            {"model": "round 2", "srcc": 0.35, "pair_acc": 0.64}]  # the last model votes for no further round
    (ax,) = report.metrics_figure(rows).axes
    lines = {line.get_label(): line for line in ax.lines}
    assert list(lines) == ["held-out SRCC (mean of N)", "held-out pair acc", "pseudo-label acc"]  # no all-gap line
    assert list(lines["held-out SRCC (mean of N)"].get_ydata()) == [0.2, 0.3, 0.35]
    assert list(lines["held-out pair acc"].get_ydata()) == [0.6, 0.62, 0.64]
    assert lines["pseudo-label acc"].get_ydata()[:2].tolist() == [0.65, 0.7]
    assert math.isnan(lines["pseudo-label acc"].get_ydata()[2])
    assert all(list(line.get_xdata()) == [0, 1, 2] and line.get_marker() == "o" for line in ax.lines)
    assert list(ax.get_xticks()) == [0, 1, 2]
    assert ax.get_title() == "Toy self-evolution: metrics per round"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(lines)
    with pytest.raises(ValueError, match="rows must hold at least the base model's row, got none"):
        report.metrics_figure([])
    folder = report.write_report(tmp_path, rows)
    assert (folder / "metrics.png").read_bytes().startswith(b"\x89PNG")
    assert (folder / "metrics.pdf").read_bytes().startswith(b"%PDF-")
