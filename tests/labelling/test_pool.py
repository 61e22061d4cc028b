import json

import numpy as np
import pytest
from PIL import Image

from evoquality.io.load import ImageRejected, decode_warning, load_image
from evoquality.labelling.pool import discover_pool


def _img(path, size=(8, 6)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (10, 20, 30)).save(path)
    return path


def test_folder_is_recursive_sorted_and_filtered(tmp_path):
    _img(tmp_path / "b.png"), _img(tmp_path / "sub" / "a.jpg")
    (tmp_path / "readme.txt").write_text("x")
    pool = discover_pool(tmp_path)
    assert pool.paths == (str(tmp_path / "b.png"), str(tmp_path / "sub" / "a.jpg"))
    assert pool.digest() == discover_pool(tmp_path).digest()


def test_manifests(tmp_path):
    for name in ("x.png", "y.png", "z.png"):
        _img(tmp_path / name)
    (tmp_path / "m.txt").write_text("x.png\n\ny.png\n")
    assert discover_pool(tmp_path / "m.txt").paths == (str(tmp_path / "x.png"), str(tmp_path / "y.png"))
    (tmp_path / "m.json").write_text(json.dumps(["x.png", {"image": "z.png"}]))
    assert len(discover_pool(tmp_path / "m.json").paths) == 2
    rows = [{"image": "x.png", "ref": "x.png"}, {"image": "y.png", "ref": "x.png"}, {"image": "z.png"}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pool = discover_pool(tmp_path / "m.jsonl")
    assert pool.groups == ((0, 1),)
    (tmp_path / "bad.jsonl").write_text('{"image": "x.png"}\n{"mos": 3}\n')
    with pytest.raises(ValueError, match="line 2 has no 'image'"):
        discover_pool(tmp_path / "bad.jsonl")


def test_internal_manifest_groups_by_reference(tmp_path):
    from evoquality.data.manifest import Header, Manifest, Record

    for name in ("ref.png", "ref_blur1.png", "ref_blur2.png", "other.png"):
        _img(tmp_path / "imgs" / name)
    records = [Record("ref.png", group="ref"), Record("ref_blur1.png", ref="ref.png", group="ref"),
               Record("ref_blur2.png", ref="ref.png", group="ref"), Record("other.png", group="other")]
    path = Manifest(Header("synthetic", root=str(tmp_path / "imgs")), records).write_jsonl(tmp_path / "m.jsonl")
    pool = discover_pool(path)
    assert pool.paths[1] == str(tmp_path / "imgs" / "ref_blur1.png")
    assert pool.groups == ((0, 1, 2),)


def test_pool_errors(tmp_path):
    with pytest.raises(ValueError, match="neither a folder nor a manifest"):
        discover_pool(tmp_path / "missing")
    _img(tmp_path / "only.png")
    with pytest.raises(ValueError, match="holds 1 image"):
        discover_pool(tmp_path)


@pytest.fixture(params=["native", "pillow"])
def decoder(request, monkeypatch):
    """Both decode paths: the native pipeline (when built) and Pillow."""
    import evoquality.io

    if request.param == "native" and not evoquality.io.native_available():
        pytest.skip("the native image extension is not built")
    if request.param == "pillow":
        monkeypatch.setattr(evoquality.io, "native_available", lambda: False)
    return request.param


def test_load_image_paths_agree(tmp_path, decoder):
    path = tmp_path / "noise.png"
    arr = np.random.default_rng(1).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    assert np.array_equal(np.asarray(load_image(str(path))), arr)


def test_load_image_rejections(tmp_path, decoder):
    assert load_image(str(_img(tmp_path / "ok.png"))).mode == "RGB"
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ImageRejected, match="unreadable"):
        load_image(str(tmp_path / "bad.jpg"))
    with pytest.raises(ImageRejected, match="oversized: 8x6 = 48 pixels > max_image_pixels=47"):
        load_image(str(tmp_path / "ok.png"), max_pixels=47)
    with pytest.raises(ImageRejected, match="aspect ratio"):
        load_image(str(_img(tmp_path / "thin.png", (402, 2))))
    # A truncated PNG is settled at decode, not later inside the model: Pillow refuses it; the native decoder keeps
    # what Pillow's LOAD_TRUNCATED_IMAGES keeps (lenient, as for a JPEG that ends early) and says so.
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(big)
    big.write_bytes(big.read_bytes()[:2000])
    if decoder == "pillow":
        with pytest.raises(ImageRejected, match="unreadable"):
            load_image(str(big))
    else:
        image = load_image(str(big))
        assert image.size == (64, 64) and "incomplete image data" in decode_warning(image)
