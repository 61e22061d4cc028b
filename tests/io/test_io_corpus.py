"""The decoder on the public image corpus beside the checkout (PngSuite, libpng's test and crasher files, Pillow's
Tests/images, libjpeg-turbo's and libwebp's test images, EXIF samples): whatever Pillow + transformers accept is
accepted and identical; the only refusals of files Pillow decodes are corrupt PNGs Pillow does not check (an IDAT
CRC error, a chunk longer than the file). Skipped where the corpus is absent."""

from __future__ import annotations

import pytest

import evoquality.io as eio
from corpus_check import BUGS, run_corpus

pytestmark = [pytest.mark.corpus, pytest.mark.skipif(not eio.native_available(), reason="native extension not built"),
              pytest.mark.filterwarnings("ignore::UserWarning")]  # Pillow's "invalid APNG" / "malformed MPO" notes


@pytest.mark.parametrize("strict", [False, True])
def test_image_corpus_matches_pillow(shared_data, strict):
    tally, results = run_corpus(shared_data / "image-corpus", strict=strict)
    assert sum(tally.values()) == 1131  # the corpus README's count: every file was read
    # Strict mode refuses exactly what lenient mode decodes with a warning, and says so.
    bugs = {name: r for name, r in results.items()
            if r[0] in BUGS and not (strict and r[0] == "refused" and "strict mode" in r[1])}
    assert not bugs, bugs
    for name, (outcome, detail) in results.items():
        if outcome == "refused_expected":
            assert "checksum" in detail or "bytes in a" in detail, (name, detail)
    if not strict:
        # Lenient mode is the contract: warnings decode, so only the corrupt files stay refused.
        assert tally["match"] > 1000 and tally["refused_expected"] <= 6
