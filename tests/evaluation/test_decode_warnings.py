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


@pytest.mark.skipif(not native_available(), reason="the native pipeline decodes the paths")
def test_model_scorer_hands_paths_to_one_native_batch_and_scores_as_decoded_images(tiny_model_dir, tmp_path):
    """Image files take stage 1's path (headers checked, one native batch call per scoring batch, the prompts carry
    the paths); the answers are those for the same images given decoded, a recovered image is counted and an
    unreadable one is a counted rejection."""
    import torch

    from evoquality.evaluation.scorers import ModelScorer
    from evoquality.io.load import load_image
    from evoquality.modeling import load_policy

    rng = np.random.default_rng(1)
    files = []
    for k in range(3):
        Image.fromarray(rng.integers(0, 256, (40 + 8 * k, 56, 3), dtype=np.uint8)).save(tmp_path / f"{k}.jpg")
        files.append(tmp_path / f"{k}.jpg")
    data = files[0].read_bytes()
    dqt = data.index(b"\xff\xdb")
    (tmp_path / "warned.jpg").write_bytes(data[:dqt] + b"\x00\x00\x00" + data[dqt:])
    (tmp_path / "broken.png").write_bytes(b"not a png")
    files += [tmp_path / "warned.jpg", tmp_path / "broken.png"]
    policy = load_policy(tiny_model_dir, device="cpu", dtype="float32", attn_implementation="sdpa")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        scorer = ModelScorer(policy, n_samples=2, batch_size=5, max_new_tokens=6)
        calls = []
        inner = policy.processor.image_processor
        real = inner._preprocess_image_like_inputs
        inner._preprocess_image_like_inputs = lambda ims, *a, **k: calls.append(list(ims)) or real(ims, *a, **k)
        by_path = scorer.score(files)
        inner._preprocess_image_like_inputs = real
        by_image = ModelScorer(policy, n_samples=2, batch_size=4, max_new_tokens=6).score(
            [load_image(str(f)) for f in files[:4]])
    finally:
        torch.set_num_threads(before)
    assert len(calls) == 1 and len(calls[0]) == 4 and all(isinstance(x, bytes) for x in calls[0])
    assert by_path.decode_warnings == 1 and by_path.failures["image rejected: unreadable"] == 1
    np.testing.assert_array_equal(by_path.greedy[:4], by_image.greedy)
    np.testing.assert_array_equal(by_path.sampled[:4], by_image.sampled)
