"""Stage 1's images on the real transformers backend: each batch's headers are checked, then its images go to the
processor as paths, read once and decoded and resized in one native batch call; a bad header or a body that fails
to decode is one counted skip, and a recovered decoder warning is counted per image."""

import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from evoquality.io import pipeline
from evoquality.labelling import read_labels
from evoquality.labelling.backends import TransformersBackend
from evoquality.labelling.config import LabelConfig
from evoquality.labelling.dist import Dist
from evoquality.labelling.runner import run_labelling

sys.path.insert(0, str(Path(__file__).parents[1] / "io"))
from test_preprocess_cache import png_with_bad_idat_crc, png_with_extra_compressed_data  # noqa: E402

pytestmark = [pytest.mark.skipif(not pipeline.native_available(), reason="the native pipeline decodes the paths"),
              pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture
def pool(tmp_path):
    folder = tmp_path / "pool"
    folder.mkdir()
    for k in range(5):
        Image.new("RGB", (40 + 9 * k, 30), (40 * k, 90, 0)).save(folder / f"im{k}.{'png' if k % 2 else 'jpg'}")
    (folder / "corrupt.png").write_bytes(png_with_bad_idat_crc(40, 40))  # a sound header, a body that fails
    (folder / "warned.png").write_bytes(png_with_extra_compressed_data(30, 20))  # decodes, with a warning
    Image.new("RGB", (402, 2)).save(folder / "thin.png")  # refused at its header
    return folder


def _spy_backend(model_dir):
    """The real backend, recording every image the native batch preprocess receives."""
    from evoquality.modeling import load_policy

    seen = []
    backend = TransformersBackend(load_policy(model_dir, device="cpu", dtype="float32", attn_implementation="sdpa"),
                                  batch_size=3)
    inner = backend.image_cache.inner
    real = inner._preprocess_image_like_inputs

    def spy(images, *args, **kwargs):
        seen.append(pipeline.flatten_images(images))
        return real(images, *args, **kwargs)

    inner._preprocess_image_like_inputs = spy
    return backend, seen


def test_paths_reach_the_native_batch_once_and_bad_images_are_counted_skips(tiny_model_dir, pool, tmp_path):
    backend, seen = _spy_backend(tiny_model_dir)
    cfg = LabelConfig(model=str(tiny_model_dir), images=str(pool), out=str(tmp_path / "r"), pairs=28, votes=2,
                      batch_items=7, max_new_tokens=4, progress=False)
    summary = run_labelling(cfg, backend_factory=lambda c, d: backend, dist=Dist())
    # No PIL image reached the processor: encoded bytes, read once per batch, decoded in C++.
    assert seen and all(isinstance(x, bytes) for call in seen for x in call)
    assert backend.image_cache.reused > 0  # the generate calls were served from the batch's cache
    assert set(summary["bad_images"]) == {str(pool / "corrupt.png"), str(pool / "thin.png")}
    assert summary["bad_images"][str(pool / "corrupt.png")].startswith("unreadable: ImageError: PNG decode failed")
    assert summary["bad_images"][str(pool / "thin.png")].startswith("aspect ratio 402x2")
    assert summary["images_decoded_with_warning"] == {str(pool / "warned.png"): "IDAT: Extra compressed data"}
    labels = read_labels(tmp_path / "r")
    assert summary["pairs_dropped_bad_image"] + len(labels) == 28 and summary["pairs_dropped_bad_image"] > 0
    assert not any("corrupt" in r["image_i"] + r["image_j"] or "thin" in r["image_i"] + r["image_j"] for r in labels)
    # The header check kept "thin" out of every batch; the corrupt body made its batch retry image by image.
    thin, corrupt = (pool / "thin.png").read_bytes(), (pool / "corrupt.png").read_bytes()
    assert not any(x == thin for call in seen for x in call)
    assert [corrupt] in seen and any(corrupt in call and len(call) > 1 for call in seen)


def test_requests_carry_paths_and_equal_the_decoded_images_inputs(tiny_model_dir, pool):
    from evoquality.io.load import load_image
    from evoquality.prompts import compare_messages
    from evoquality.sampling import build_inputs

    backend, seen = _spy_backend(tiny_model_dir)
    paths = [str(pool / "im1.png"), str(pool / "im2.jpg"), str(pool / "warned.png")]
    prepared = backend.prepare_images(paths, max_pixels=10**7)
    assert [prepared[p].image for p in paths] == paths
    requests = [(compare_messages(), [paths[0], paths[1]]), (compare_messages(), [paths[2], paths[0]])]
    got = build_inputs(backend.policy, requests)
    # What the previous path gave: the decoded images, converted back by the processor.
    from evoquality.processing import load_processor

    backend.policy.processor = load_processor(tiny_model_dir)
    want = build_inputs(backend.policy, [(m, [load_image(p) for p in imgs]) for m, imgs in requests])
    assert set(got.keys()) == set(want.keys())
    for key in want:
        assert torch.equal(got[key], want[key]), key
    assert len(seen) == 1 and len(seen[0]) == 3  # one native call for the three images, none at build time


def test_the_pillow_fallback_takes_the_same_path_and_gives_the_same_votes(tiny_model_dir, pool, tmp_path,
                                                                            monkeypatch):
    """An install without the extension: Pillow decodes (io.load) and transformers' Pillow processor preprocesses,
    through the same cache keyed by path; the votes are the native path's, bit for bit."""
    import evoquality.io
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from evoquality.modeling import load_policy

    for name in ("corrupt.png", "warned.png"):  # Pillow checks no IDAT CRC and warns of nothing: not comparable
        (pool / name).unlink()

    def votes(out, pillow: bool):
        policy = load_policy(tiny_model_dir, device="cpu", dtype="float32", attn_implementation="sdpa")
        if pillow:
            policy.processor.image_processor = Qwen2VLImageProcessorPil.from_pretrained(tiny_model_dir)
        cfg = LabelConfig(model=str(tiny_model_dir), images=str(pool), out=str(out), pairs=10, votes=2,
                          batch_items=5, max_new_tokens=6, save_answers=True, progress=False)
        summary = run_labelling(cfg, backend_factory=lambda c, d: TransformersBackend(policy, batch_size=4),
                                dist=Dist())
        return summary, (out / "votes" / "rank-00000.jsonl").read_text()

    native_summary, native_votes = votes(tmp_path / "native", pillow=False)
    with monkeypatch.context() as m:
        m.setattr(evoquality.io, "native_available", lambda: False)
        pillow_summary, pillow_votes = votes(tmp_path / "pillow", pillow=True)
    assert pillow_votes == native_votes and "texts" in native_votes
    assert pillow_summary["bad_images"] == native_summary["bad_images"] == {
        str(pool / "thin.png"): "aspect ratio 402x2 exceeds 200:1 (the Qwen2-VL processor rejects it)"}
