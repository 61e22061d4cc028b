"""Evaluation scores an image its decoder recovered (as transformers would) and counts it in the results rows."""

import numpy as np
import pytest
from PIL import Image

from evoquality.evaluation import reference_metrics
from evoquality.evaluation.scorers import ReferenceScorer
from evoquality.io import native_available


@pytest.mark.skipif(not native_available(), reason="the warning comes from the native decoder")
def test_reference_scorer_counts_decode_warnings(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "clean.jpg", quality=90)
    data = (tmp_path / "clean.jpg").read_bytes()
    dqt = data.index(b"\xff\xdb")
    # Junk before a marker: libjpeg-turbo warns "3 extraneous bytes before marker 0xdb"; Pillow decodes it.
    (tmp_path / "warned.jpg").write_bytes(data[:dqt] + b"\x00\x00\x00" + data[dqt:])
    result = ReferenceScorer("piqe", reference_metrics.piqe, False, False).score(
        [tmp_path / "warned.jpg", tmp_path / "clean.jpg"])
    assert result.decode_warnings == 1 and not result.failures
    assert result.scores[0] == result.scores[1]  # the same pixels
