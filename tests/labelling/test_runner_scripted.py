"""The runner with scripted backends: exact tallies, order randomisation, bad input, resume, config guard."""

import json

import pytest
from PIL import Image

from evoquality.labelling import read_labels
from evoquality.labelling.config import LabelConfig
from evoquality.labelling.dist import Dist
from evoquality.labelling.runner import run_labelling
from evoquality.labelling.store import ConfigMismatch


def _cfg(tiny_model_dir, pool, out, **kw):
    base = dict(model=str(tiny_model_dir), images=str(pool), out=str(out), pairs=20, votes=6, batch_items=3,
                max_new_tokens=8, progress=False)
    base.update(kw)
    return LabelConfig(**base)


def _run(cfg, backend):
    return run_labelling(cfg, backend_factory=lambda c, d: backend, dist=Dist())


def prefers_higher_id(first, second, rng):
    # id 3 shown first never answers in the required format: those votes are invalid.
    if first == 3:
        return "I cannot tell."
    return "reasoning... \\boxed{0}" if first > second else "\\boxed{1}"


def test_exact_tallies_and_one_request_per_order(tiny_model_dir, id_pool, tmp_path, scripted):
    backend = scripted(prefers_higher_id)
    summary = _run(_cfg(tiny_model_dir, id_pool, tmp_path / "r"), backend)
    labels = read_labels(tmp_path / "r")
    assert len(labels) == 20 and summary["pairs_labelled"] == 20
    votes_dir = tmp_path / "r" / "votes"
    records = {r["item"]: r for r in map(json.loads, (votes_dir / "rank-00000.jsonl").read_text().splitlines())}
    n_invalid_total = 0
    for row in labels:
        i = int(row["image_i"].rsplit("im", 1)[1][:-4])
        j = int(row["image_j"].rsplit("im", 1)[1][:-4])
        orders = records[row["pair"]]["orders"]
        # Invalid votes: those showing image 3 first.
        first_ids = [j if o == "1" else i for o in orders]
        invalid = sum(f == 3 for f in first_ids)
        valid = 6 - invalid
        assert row["invalid"] == invalid
        assert (row["votes_i"], row["votes_j"]) == ((valid, 0) if i > j else (0, valid))
        assert row["p_star"] == (0.5 if valid == 0 else float(i > j))
        assert row["flagged"] is False
        n_invalid_total += invalid
    assert summary["votes_invalid"] == n_invalid_total
    assert summary["parse_failure_rate"] == pytest.approx(n_invalid_total / 120, abs=0)
    # One request per (pair, order) with n = that order's votes; balanced design: 3 + 3.
    reqs = [r for call in backend.calls for r in call]
    assert len(reqs) == 40 and all(r.n == 3 for r in reqs)
    assert len(backend.calls) == 7  # ceil(20 / 3) batches


def test_always_first_gives_ties_not_a_preference(tiny_model_dir, id_pool, tmp_path, scripted):
    always0 = lambda first, second, rng: "\\boxed{0}"  # noqa: E731
    s = _run(_cfg(tiny_model_dir, id_pool, tmp_path / "bal", pairs=28, votes=8), scripted(always0))
    assert s["tie_rate"] == 1.0 and s["position_bias"] == 1.0
    assert all(r["votes_i"] == r["votes_j"] == 4 for r in read_labels(tmp_path / "bal"))
    # Random design: votes_i ~ Binomial(K, 1/2) per pair; no side is favoured.
    s = _run(_cfg(tiny_model_dir, id_pool, tmp_path / "rnd", pairs=28, votes=32, order="random", seed=5),
             scripted(always0))
    labels = read_labels(tmp_path / "rnd")
    share_i = sum(r["votes_i"] for r in labels) / sum(r["votes_i"] + r["votes_j"] for r in labels)
    assert abs(share_i - 0.5) < 0.06  # 896 votes: 3.6 standard deviations
    decided = [r["p_star"] for r in labels if r["p_star"] != 0.5]
    assert 0.2 < sum(decided) / len(decided) < 0.8


def test_bad_images_are_reported_and_their_pairs_dropped(tiny_model_dir, id_pool, tmp_path, scripted):
    (id_pool / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    Image.new("RGB", (300, 300), (50, 0, 0)).save(id_pool / "huge.png")
    s = _run(_cfg(tiny_model_dir, id_pool, tmp_path / "r", pairs=45, max_image_pixels=200 * 200),
             scripted(prefers_higher_id))
    assert set(s["bad_images"]) == {str(id_pool / "broken.png"), str(id_pool / "huge.png")}
    assert "oversized" in s["bad_images"][str(id_pool / "huge.png")]
    labels = read_labels(tmp_path / "r")
    assert s["pairs_dropped_bad_image"] + len(labels) == 45 and s["pairs_dropped_bad_image"] > 0
    assert not any("broken" in r["image_i"] + r["image_j"] or "huge" in r["image_i"] + r["image_j"] for r in labels)


def test_resume_after_a_crash_matches_an_uninterrupted_run(tiny_model_dir, id_pool, tmp_path, scripted):
    def noisy(first, second, rng):
        return rng.choice(["\\boxed{0}", "\\boxed{1}", "\\boxed{1}", "no idea"])

    _run(_cfg(tiny_model_dir, id_pool, tmp_path / "full"), scripted(noisy))

    class Crash(RuntimeError):
        pass

    calls = {"n": 0}

    def crashing(first, second, rng):
        calls["n"] += 1
        if calls["n"] > 40:  # during the 3rd batch (18 prompts x 6 votes... crash mid-run)
            raise Crash
        return noisy(first, second, rng)

    with pytest.raises(Crash):
        _run(_cfg(tiny_model_dir, id_pool, tmp_path / "cut"), scripted(crashing))
    assert not (tmp_path / "cut" / "labels.jsonl").exists()
    # Also as if the very first session had died right after claiming the directory.
    (tmp_path / "cut" / "pairs.jsonl").unlink()
    _run(_cfg(tiny_model_dir, id_pool, tmp_path / "cut"), scripted(noisy))
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("image_i", "image_j")} for r in rows]  # noqa
    assert strip(read_labels(tmp_path / "cut")) == strip(read_labels(tmp_path / "full"))
    runs = (tmp_path / "cut" / "runs" / "rank-00000.jsonl").read_text().splitlines()
    assert len(runs) == 1  # the crashed session logged nothing; the resumed one did the rest
    assert json.loads(runs[0])["items"] < 20


def test_config_guard_and_relabel_without_regeneration(tiny_model_dir, id_pool, tmp_path, scripted):
    _run(_cfg(tiny_model_dir, id_pool, tmp_path / "r"), scripted(prefers_higher_id))
    with pytest.raises(ConfigMismatch, match="votes: stored 6, requested 8"):
        _run(_cfg(tiny_model_dir, id_pool, tmp_path / "r", votes=8), scripted(prefers_higher_id))

    def no_backend(cfg, dist):
        raise AssertionError("finished votes must not be regenerated")

    s = run_labelling(_cfg(tiny_model_dir, id_pool, tmp_path / "r", label="soft", min_margin=5),
                      backend_factory=no_backend, dist=Dist())
    labels = read_labels(tmp_path / "r")
    for r in labels:
        valid = r["votes_i"] + r["votes_j"]
        assert r["p_star"] == (r["votes_i"] / valid if valid else 0.5)
        assert r["flagged"] == (abs(r["votes_i"] - r["votes_j"]) < 5)
    assert s["flagged"] == sum(r["flagged"] for r in labels) > 0


def test_no_votes_drop_policy(tiny_model_dir, id_pool, tmp_path, scripted):
    never = lambda first, second, rng: "hmm"  # noqa: E731
    s = _run(_cfg(tiny_model_dir, id_pool, tmp_path / "r", no_votes="drop"), scripted(never))
    assert read_labels(tmp_path / "r") == [] and s["pairs_no_valid_votes"] == 20
    assert s["parse_failure_rate"] == 1.0


def test_not_a_vlm_checkpoint_fails_before_any_work(id_pool, tmp_path, scripted):
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="unsupported architecture"):
        _run(_cfg(bert, id_pool, tmp_path / "r"), scripted(prefers_higher_id))
    assert not (tmp_path / "r").exists()


def test_bad_options_name_the_argument(tiny_model_dir, id_pool, tmp_path):
    with pytest.raises(ValueError, match="votes must be a positive int"):
        _cfg(tiny_model_dir, id_pool, tmp_path, votes=0).validate()
    with pytest.raises(ValueError, match="mode must be one of"):
        _cfg(tiny_model_dir, id_pool, tmp_path, mode="rank").validate()
    with pytest.raises(ValueError, match="asked for 99 pairs but 8 images have only 28"):
        _run(_cfg(tiny_model_dir, id_pool, tmp_path / "r", pairs=99), None)
    with pytest.raises(ValueError, match="backend 'vllm' runs one engine per job"):
        run_labelling(_cfg(tiny_model_dir, id_pool, tmp_path / "v", backend="vllm"), dist=Dist(rank=0, world=2))


def _png_with_extra_compressed_data(path, value: int) -> None:
    """A 16x12 RGB PNG filled with (value, 0, 0) whose IDAT carries bytes after the zlib stream: libpng warns
    "Extra compressed data", Pillow and transformers decode it."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes([value, 0, 0]) * 16 for _ in range(12))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 12, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw) + b"\x00" * 16) + chunk(b"IEND", b""))


def test_images_decoded_with_a_warning_are_used_and_counted(tiny_model_dir, id_pool, tmp_path, scripted):
    from evoquality.io import native_available

    if not native_available():
        pytest.skip("the warning comes from the native decoder")
    _png_with_extra_compressed_data(id_pool / "im8.png", 80)
    s = _run(_cfg(tiny_model_dir, id_pool, tmp_path / "r", pairs=36), scripted(prefers_higher_id))
    assert s["n_images_decoded_with_warning"] == 1 and s["n_bad_images"] == 0
    assert "Extra compressed data" in s["images_decoded_with_warning"][str(id_pool / "im8.png")]
    labels = read_labels(tmp_path / "r")
    assert len(labels) == 36 and any("im8" in r["image_i"] + r["image_j"] for r in labels)
