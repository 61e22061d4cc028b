"""NativeQwen2VLImageProcessor: same outputs as its parent Qwen2VLImageProcessorPil, runs natively, accepts bytes and
paths, saves a config stock transformers loads, and works inside the project's processor with the tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import evoquality.io as eio
from evoquality.io import pipeline
from io_helpers import encoded_rgb, photo

pytestmark = pytest.mark.skipif(not eio.native_available(), reason="native extension not built")

from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil  # noqa: E402

from evoquality.io import NativeQwen2VLImageProcessor  # noqa: E402


def _images():
    return [Image.fromarray(photo(70, 90)), Image.fromarray(photo(33, 301, 2)).convert("RGBA"),
            Image.fromarray(photo(120, 40, 3)).convert("L"), photo(64, 48, 4), torch.from_numpy(photo(20, 30, 5))]


@pytest.mark.parametrize("kw", [{}, {"min_pixels": 28 * 28, "max_pixels": 112 * 112}])
def test_same_as_parent_and_runs_natively(kw, monkeypatch):
    calls = []
    real = pipeline.preprocess
    monkeypatch.setattr(pipeline, "preprocess", lambda *a, **k: calls.append(1) or real(*a, **k))
    want = Qwen2VLImageProcessorPil(**kw)(_images(), return_tensors="pt")
    got = NativeQwen2VLImageProcessor(**kw)(_images(), return_tensors="pt")
    assert calls == [1]
    assert torch.equal(got["pixel_values"], want["pixel_values"])
    assert torch.equal(got["image_grid_thw"], want["image_grid_thw"])


def test_bytes_and_paths(tmp_path):
    blob = encoded_rgb(77, 51, "JPEG")
    (tmp_path / "a.jpg").write_bytes(blob)
    want = Qwen2VLImageProcessorPil()([Image.open(tmp_path / "a.jpg")])
    for form in (blob, str(tmp_path / "a.jpg"), tmp_path / "a.jpg"):
        got = NativeQwen2VLImageProcessor()([form])
        np.testing.assert_array_equal(got["pixel_values"], want["pixel_values"])


def test_non_bicubic_falls_back_to_parent_exactly(monkeypatch, tmp_path):
    monkeypatch.setattr(pipeline, "preprocess", lambda *a, **k: pytest.fail("native path used for BILINEAR"))
    want = Qwen2VLImageProcessorPil(resample=2)(_images()[:2])
    got = NativeQwen2VLImageProcessor(resample=2)(_images()[:2])
    np.testing.assert_array_equal(got["pixel_values"], want["pixel_values"])
    # Paths and bytes are decoded natively first, then go to the parent.
    (tmp_path / "a.png").write_bytes(encoded_rgb(41, 66, "PNG"))
    want = Qwen2VLImageProcessorPil(resample=2)([Image.open(tmp_path / "a.png")] * 2)
    got = NativeQwen2VLImageProcessor(resample=2)([str(tmp_path / "a.png"), (tmp_path / "a.png").read_bytes()])
    np.testing.assert_array_equal(got["pixel_values"], want["pixel_values"])


def test_saved_config_loads_in_stock_transformers(tmp_path):
    from transformers import AutoImageProcessor

    NativeQwen2VLImageProcessor(min_pixels=1000, num_threads=2, strict=True).save_pretrained(tmp_path)
    stock = AutoImageProcessor.from_pretrained(tmp_path)
    assert type(stock).__name__.startswith("Qwen2VLImageProcessor") and stock.size["shortest_edge"] == 1000
    native = NativeQwen2VLImageProcessor.from_pretrained(tmp_path)
    # Runtime settings are not saved: the default (lenient) comes back.
    assert native.size["shortest_edge"] == 1000 and native.num_threads is None and not native.strict


def test_bad_image_error_names_input():
    with pytest.raises(eio.ImageDecodeError, match=r"image 1 \(5 bytes\): unsupported image format"):
        NativeQwen2VLImageProcessor()([encoded_rgb(30, 30, "PNG"), b"hello"])


def test_recovered_images_are_processed_counted_and_strict_refuses_them():
    data = encoded_rgb(30, 30, "JPEG")
    dqt = data.index(b"\xff\xdb")
    junk = data[:dqt] + b"\x00\x00" + data[dqt:]  # "2 extraneous bytes before marker": Pillow decodes it
    processor = NativeQwen2VLImageProcessor()
    got = processor([junk, data])
    np.testing.assert_array_equal(got["pixel_values"], processor([data, data])["pixel_values"])
    assert processor.num_decode_warnings == 1
    with pytest.raises(eio.ImageDecodeError, match=r"image 0 .*strict mode.*extraneous bytes"):
        NativeQwen2VLImageProcessor(strict=True)([junk])


def test_inside_project_processor_with_tiny_model(tiny_model_dir):
    from evoquality.processing import load_processor
    from evoquality.prompts import score_messages

    stock = load_processor(tiny_model_dir)
    native = eio.use_native_image_processor(load_processor(tiny_model_dir))
    assert isinstance(native.image_processor, NativeQwen2VLImageProcessor)
    assert native.image_processor.size == stock.image_processor.size
    text = stock.apply_chat_template(score_messages(), add_generation_prompt=True, tokenize=False)
    images = [Image.fromarray(photo(150, 100, 7))]
    a = stock(text=[text], images=images, return_tensors="pt")
    b = native(text=[text], images=images, return_tensors="pt")
    assert torch.equal(a["input_ids"], b["input_ids"])
    assert torch.equal(a["pixel_values"], b["pixel_values"])
    assert torch.equal(a["image_grid_thw"], b["image_grid_thw"])


def test_full_processor_takes_paths_and_bytes_without_pillow(tiny_model_dir, tmp_path, monkeypatch):
    """Inside the processor (a call, and the chat template with the image in its content as TRL builds it) paths and
    bytes reach the native decoder: transformers' fetch would open them with Pillow first."""
    import PIL.Image

    from evoquality.processing import load_processor
    from evoquality.prompts import compare_messages

    (tmp_path / "a.jpg").write_bytes(encoded_rgb(90, 70, "JPEG"))
    (tmp_path / "b.png").write_bytes(encoded_rgb(33, 120, "PNG", seed=3))
    processor = load_processor(tiny_model_dir)
    text = processor.apply_chat_template(compare_messages(), add_generation_prompt=True, tokenize=False)
    want = processor(text=[text], images=[Image.open(tmp_path / "a.jpg"), Image.open(tmp_path / "b.png")],
                     return_tensors="pt")
    monkeypatch.setattr(PIL.Image, "open", lambda *a, **k: pytest.fail("a path was opened with Pillow"))
    forms = ([str(tmp_path / "a.jpg"), str(tmp_path / "b.png")],
             [(tmp_path / "a.jpg").read_bytes(), (tmp_path / "b.png").read_bytes()],
             [[str(tmp_path / "a.jpg"), (tmp_path / "b.png").read_bytes()]])
    for images in forms:
        got = processor(text=[text], images=images, return_tensors="pt")
        assert all(torch.equal(got[k], want[k]) for k in want)
    content = [{"type": "image", "image": str(tmp_path / "a.jpg")}, {"type": "image", "image": str(tmp_path / "b.png")},
               *compare_messages()[0]["content"][-1:]]
    got = processor.apply_chat_template([[{"role": "user", "content": content}]], add_generation_prompt=True,
                                        tokenize=True, return_dict=True, return_tensors="pt")
    assert torch.equal(got["pixel_values"], want["pixel_values"])
    with pytest.raises(ValueError, match=r"Found total 2 .* tokens and 1 images"):
        processor(text=[text], images=[str(tmp_path / "a.jpg")])


@pytest.mark.parametrize("kw", [dict(do_resize=False), dict(do_normalize=False), dict(do_rescale=False),
                                dict(image_mean=0.5, image_std=0.5), dict(rescale_factor=1 / 127.5)])
def test_options_match_parent(kw):
    images = [Image.fromarray(photo(56, 84, 9))]
    want = Qwen2VLImageProcessorPil(**kw)(images)
    got = NativeQwen2VLImageProcessor(**kw)(images)
    np.testing.assert_array_equal(got["pixel_values"], want["pixel_values"])
    np.testing.assert_array_equal(got["image_grid_thw"], want["image_grid_thw"])


def test_flatten_images_keeps_order_at_any_depth():
    # TRL nests images per sample and per turn; bytes, str and arrays are leaves, not sequences to descend into.
    a, b, c = b"\x89PNG", "x.png", np.zeros((2, 2, 3), np.uint8)
    assert pipeline.flatten_images([[a], ([b, [c]],), []]) == [a, b, c]
    assert pipeline.flatten_images(a) == [a]
