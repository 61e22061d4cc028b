"""Helpers of the labelling tests: a pool whose images carry their identity in their pixels, and scripted
generation backends that answer from that identity (exact expectations, no model)."""

import numpy as np
import pytest
from PIL import Image

from evoquality.labelling.backends import GenRequest, decode_images


def image_id(img) -> int:
    return img.getpixel((0, 0))[0] // 10


@pytest.fixture
def id_pool(tmp_path):
    """A folder of 8 images; image k (file im{k}.png) is filled with the value 10*k."""
    folder = tmp_path / "pool"
    folder.mkdir()
    for k in range(8):
        Image.new("RGB", (16 + k, 12), (10 * k, 0, 0)).save(folder / f"im{k}.png")
    return folder


class ScriptedBackend:
    """Answers each prompt from the ids of the images in shown order: `answer(first_id, second_id, rng) -> text`.
    Records every request so tests can check the request structure."""

    name = "scripted"

    def __init__(self, answer):
        self.answer = answer
        self.calls: list[list[GenRequest]] = []

    def prepare_images(self, paths, *, max_pixels):
        return decode_images(paths, max_pixels=max_pixels)

    def generate(self, requests, *, max_new_tokens, temperature, batch_seed):
        self.calls.append(list(requests))
        rng = np.random.default_rng(batch_seed)
        out = []
        for req in requests:
            ids = [image_id(im) for im in req.images]
            out.append([self.answer(*ids, rng) if len(ids) == 2 else self.answer(ids[0], None, rng)
                        for _ in range(req.n)])
        return out


@pytest.fixture
def scripted():
    return ScriptedBackend
