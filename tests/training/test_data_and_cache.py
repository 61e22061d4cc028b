import numpy as np
import pytest
from PIL import Image

from evoquality.io.preprocess_cache import IMAGE_ID_KEY, CachedImageProcessor
from evoquality.prompts import compare_messages, score_messages
from evoquality.training.data import ImageStore, build_dataset, compare_orders, pairs_from_records
from evoquality.training.timing import PhaseTimer


def _images(tmp_path, n, seed=0):
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(n):
        h, w = (int(v) for v in rng.integers(30, 80, 2))
        p = tmp_path / f"im{k}.png"
        Image.fromarray((rng.random((h, w, 3)) * 255).astype("uint8")).save(p)
        paths.append(str(p))
    return paths


def test_pairs_from_records_counts_every_skip(tmp_path):
    a, b, c = _images(tmp_path, 3)
    records = [
        {"image_i": a, "image_j": b, "p_star": 1.0},
        {"image_i": b, "image_j": a, "p_star": 0.0},  # the same pair again
        {"image_i": a, "image_j": a, "p_star": 0.5},
        {"image_i": a, "image_j": c, "p_star": None},
        {"image_i": a, "image_j": c, "p_star": 1.5},
        {"image_i": b, "image_j": c, "p_star": 0.5, "flagged": True},
        {"image_i": b, "image_j": str(tmp_path / "gone.png"), "p_star": 0.5},
        {"image_j": c, "p_star": 0.5},
        {"image_i": c, "image_j": b, "p_star": 0.25},
    ]
    pairs = pairs_from_records(records)
    assert len(pairs) == 2 and pairs.images == [a, b, c]
    assert dict(pairs.skipped) == {
        "duplicate pair": 1, "image paired with itself": 1, "p_star missing or outside [0, 1]": 2,
        "flagged by stage 1": 1, "image file missing": 1, "missing image_i/image_j": 1,
    }
    # p*_ji = 1 - p*_ij, each pair once, positions in the given list.
    found, labels = pairs.pairs_among([b, c, a])
    assert sorted(zip(found, labels)) == [((0, 1), 0.75), ((0, 2), 0.0)]
    assert pairs.pairs_among([c]) == ([], [])
    with pytest.raises(ValueError, match="must not repeat an image"):
        pairs.pairs_among([a, a])


def test_image_store_decodes_once_and_stamps_ids(tmp_path):
    paths = _images(tmp_path, 3)
    calls = []

    def loader(ref):
        calls.append(ref)
        return Image.open(ref).convert("RGB")

    store = ImageStore(capacity=2, loader=loader)
    im = store.get(paths[0])
    assert store.get(paths[0]) is im and im.info[IMAGE_ID_KEY] == paths[0]
    import copy
    assert copy.deepcopy([im])[0] is im  # TRL's per-rollout prompt deep copy shares the decoded image
    store.get(paths[1]), store.get(paths[2]), store.get(paths[0])  # capacity 2: paths[0] was evicted
    assert calls == [paths[0], paths[1], paths[2], paths[0]]
    with pytest.raises(ValueError, match="could not be loaded for training"):
        store.get(str(tmp_path / "missing.png"))


def test_an_evicted_image_is_freed_without_the_cyclic_collector(tmp_path):
    import gc
    import weakref

    paths = _images(tmp_path, 2)
    store = ImageStore(capacity=1, loader=lambda r: Image.open(r).convert("RGB"))
    gone = weakref.ref(store.get(paths[0]))
    gc.disable()
    try:
        store.get(paths[1])  # evicts paths[0]: no reference cycle keeps it alive until a collection
        assert gone() is None
    finally:
        gc.enable()


def test_dataset_rows_attach_prompt_and_image(tmp_path):
    a, b = _images(tmp_path, 2)
    pairs = pairs_from_records([{"image_i": a, "image_j": b, "p_star": 1.0}])
    ds = build_dataset(pairs)
    assert len(ds) == 2
    row = ds[1]
    assert row["image_id"] == b and row["pair"] == -1 and row["images"] == [b]  # the path: nothing decoded yet
    assert row["prompt"] == score_messages()
    # With a store (vLLM generation), the decoded image stamped with its path.
    row = build_dataset(pairs, ImageStore(4, loader=lambda r: Image.open(r).convert("RGB")))[1]
    assert [im.info[IMAGE_ID_KEY] for im in row["images"]] == [b]


def test_compare_rows_show_each_pair_once_in_a_coin_flipped_order(tmp_path):
    paths = _images(tmp_path, 8)
    records = [{"image_i": paths[k], "image_j": paths[k + 1], "p_star": 1.0} for k in range(0, 8, 2)]
    records += [{"image_i": paths[k], "image_j": paths[k + 3], "p_star": 0.0} for k in range(0, 5)]
    pairs = pairs_from_records(records)
    ds = build_dataset(pairs, compare=True, seed=3)
    assert len(ds) == 8 + 9
    swapped = compare_orders(9, seed=3)
    assert 0 < swapped.sum() < 9  # both orders occur
    for k in range(9):
        row = ds[8 + k]
        i, j = (pairs.images[x] for x in pairs.pairs[k])
        assert (row["image_id"], row["pair"], row["swapped"]) == (f"compare:{k}", k, bool(swapped[k]))
        assert row["prompt"] == compare_messages()
        assert row["images"] == ([j, i] if swapped[k] else [i, j])


def test_cached_processor_equals_uncached_and_preprocesses_each_image_once(tmp_path, tiny_model_dir):
    from evoquality.io.load import load_image
    from evoquality.processing import load_processor

    paths = _images(tmp_path, 3, seed=1)
    plain = load_processor(tiny_model_dir).image_processor
    cached = CachedImageProcessor(load_processor(tiny_model_dir).image_processor)
    # Repeats, as TRL sends rollouts; the cache is keyed by path, the reference gets the decoded images.
    order = [0, 1, 0, 2, 1]
    decoded = [load_image(p) for p in paths]
    for kwargs in ({}, {"return_tensors": "pt"}):
        want, got = plain([decoded[k] for k in order], **kwargs), cached([paths[k] for k in order], **kwargs)
        assert set(got.keys()) == set(want.keys())
        for key in want:
            assert np.array_equal(np.asarray(got[key]), np.asarray(want[key])), key
        assert type(got["pixel_values"]) is type(want["pixel_values"])
    assert (cached.computed, cached.reused) == (3, 7)
    cached.clear()
    cached([paths[2]])
    assert cached.computed == 4
    # A decoded image stamped with its path (vLLM's rows) is cached under that path.
    stamped = load_image(paths[0])
    stamped.info[IMAGE_ID_KEY] = paths[0]
    cached([stamped]), cached([paths[0]])
    assert (cached.computed, cached.reused) == (5, 8)
    # Images without a path pass straight through.
    fresh = Image.open(paths[0]).convert("RGB")
    assert np.array_equal(np.asarray(cached([fresh])["pixel_values"]), np.asarray(plain([fresh])["pixel_values"]))
    assert cached.merge_size == plain.merge_size  # attributes are forwarded


def test_a_step_reads_and_decodes_each_image_once(tmp_path, tiny_model_dir, monkeypatch):
    """TRL's calls of one step (G rollouts per image in chunks, then the forward batch) read each path once and
    decode it in one native batch call: no Pillow image anywhere."""
    from evoquality.io import load, pipeline
    from evoquality.processing import load_processor

    if not pipeline.native_available():
        pytest.skip("the native pipeline decodes the paths")
    paths = _images(tmp_path, 4, seed=2)
    reads, batches = [], []
    real_input, real_preprocess = load.image_input, pipeline.preprocess
    cached = CachedImageProcessor(load_processor(tiny_model_dir).image_processor,
                                  loader=lambda p: reads.append(p) or real_input(p))
    monkeypatch.setattr(pipeline, "preprocess", lambda images, **k: batches.append(list(images))
                        or real_preprocess(images, **k))
    G = 4
    rollouts = [[p] for p in paths for _ in range(G)]
    for step in range(2):
        cached.clear()
        for start in range(0, len(rollouts), 3):  # generation in chunks of 3 prompts
            cached(rollouts[start : start + 3], return_tensors="pt")
        cached(rollouts, return_tensors="pt")  # the training forward
    assert reads == paths * 2 and cached.computed == 2 * len(paths)
    assert all(isinstance(x, bytes) for batch in batches for x in batch)  # encoded bytes, decoded in C++
    assert sum(len(b) for b in batches) == 2 * len(paths)


def test_phase_timer_exclusive_nesting():
    clock = iter(range(100))
    timer = PhaseTimer()
    timer._now = lambda: float(next(clock))  # a deterministic clock: every boundary ticks by 1
    with timer.phase("forward_backward"):  # opens at 0
        with timer.phase("other"):  # 1
            with timer.phase("generation"):  # 2 .. 3
                pass
            timer.add("preprocess", 0.5)  # measured elsewhere, moved out of "other"
        # other closes at 4: 3 elapsed - 1 generation - 0.5 preprocess = 1.5
    # forward_backward closes at 5: 5 elapsed - 3 children = 2
    out = timer.take()
    assert out["generation"] == 1 and out["other"] == 1.5 and out["preprocess"] == 0.5
    assert out["forward_backward"] == 2 and out["total"] == 5
    assert out["non_model_share"] == pytest.approx((1.5 + 0.5) / 5, abs=0)
    assert timer.take()["total"] == 0
    with pytest.raises(ValueError, match="phase must be one of"):
        timer.start("nap")
    timer.start("reward")
    with pytest.raises(RuntimeError, match="innermost open phase is 'reward'"):
        timer.stop("optimizer")
