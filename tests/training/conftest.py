"""Shared stage-2 fixtures: a tiny model that answers in the scoring format, and small labelled image sets."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def scoring_model_dir(tiny_model_dir, tmp_path_factory):
    from _scoring_model import make_scoring_model

    return make_scoring_model(Path(tiny_model_dir), tmp_path_factory.mktemp("scoring-model"), steps=60)


@pytest.fixture(scope="session")
def brightness_model_dir(tiny_model_dir, tmp_path_factory):
    """A scoring model that looks at the images and scores dark ones higher (see `_scoring_model`)."""
    from _scoring_model import make_scoring_model

    return make_scoring_model(Path(tiny_model_dir), tmp_path_factory.mktemp("brightness-model"), steps=200,
                              dark_scores_higher=True)


def write_images(folder: Path, n: int, *, seed: int, low: int = 0, high: int = 256, prefix: str = "im",
                 side: tuple[int, int] = (28, 70)) -> list[str]:
    """`n` random RGB images (sides drawn in [side[0], side[1]) px) with pixel values in [low, high); returns their
    paths."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        h, w = (int(v) for v in rng.integers(side[0], side[1], 2))
        path = folder / f"{prefix}{k}.png"
        Image.fromarray(rng.integers(low, high, (h, w, 3)).astype("uint8")).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture
def labelled_pool(tmp_path):
    """8 images and 6 labelled pairs (some images in two pairs), labels of every kind (win, loss, tie)."""
    paths = write_images(tmp_path / "pool", 8, seed=3)
    spec = [(0, 1, 1.0), (2, 3, 0.0), (4, 5, 0.5), (6, 7, 1.0), (1, 2, 1.0), (5, 6, 0.0)]
    records = [{"image_i": paths[i], "image_j": paths[j], "p_star": p} for i, j, p in spec]
    return paths, records
