"""`api.compare` is stage 1's voting: the same orders, the same per-order requests and seeds, the same tally."""

import pytest
from PIL import Image

from evoquality import api
from evoquality.io import pipeline
from evoquality.labelling import read_labels
from evoquality.labelling.config import LabelConfig
from evoquality.labelling.dist import Dist
from evoquality.labelling.runner import run_labelling
from evoquality.labelling.votes import derive_seed


def noisy_higher_id(first, second, rng):
    """Prefers the higher image id 70% of the time; 20% of the answers do not parse."""
    u = rng.random()
    if u < 0.2:
        return "I cannot tell."
    return "\\boxed{0}" if (first > second) == (u < 0.9) else "\\boxed{1}"


def test_compare_gives_the_labelling_tally_on_the_same_answers(tiny_model_dir, id_pool, tmp_path, scripted):
    # batch_items=1: stage 1's batch b is pair b, so both paths seed the scripted answers identically.
    cfg = LabelConfig(model=str(tiny_model_dir), images=str(id_pool), out=str(tmp_path / "r"), pairs=12, votes=7,
                      batch_items=1, seed=3, max_new_tokens=8, progress=False)
    run_labelling(cfg, backend_factory=lambda c, d: scripted(noisy_higher_id), dist=Dist())
    labels = read_labels(tmp_path / "r")
    assert [r["pair"] for r in labels] == list(range(12))

    backend = scripted(noisy_higher_id)
    prefs = api.vote_pairs(backend, [(r["image_i"], r["image_j"]) for r in labels], votes=7, temperature=1.0,
                           max_new_tokens=8, seed=3)
    assert [(p.votes_a, p.votes_b, p.invalid) for p in prefs] == [(r["votes_i"], r["votes_j"], r["invalid"])
                                                                   for r in labels]
    assert [p.winner for p in prefs] == [{1.0: "a", 0.0: "b", 0.5: "tie"}[r["p_star"]] for r in labels]
    assert {p.winner for p in prefs} >= {"a", "b"} and sum(p.invalid for p in prefs) > 0  # the case is not trivial

    # Each pair: one request per image order (3 + 4 votes), each with its own seed.
    for pid, call in enumerate(backend.calls):
        assert sorted(r.n for r in call) == [3, 4]
        assert sorted(r.seed for r in call) == sorted([derive_seed(3, pid, 1), derive_seed(3, pid, 2)])
        assert call[0].seed != call[1].seed


@pytest.mark.skipif(not pipeline.native_available(), reason="the native pipeline decodes the paths")
def test_compare_gives_the_processor_paths_and_the_votes_of_the_decoded_images(tiny_model_dir, id_pool, monkeypatch,
                                                                                 one_torch_thread):
    """Paths take stage 1's route (`prepare_images`, then requests carrying the paths): the processor gets each
    pair's encoded files in one native call and no PIL image, and the votes are those of the images given decoded
    (which still go to the processor as PIL images)."""
    from evoquality.io.load import load_image
    from evoquality.modeling import load_policy
    from evoquality.sampling import image_cache

    policy = load_policy(tiny_model_dir, device="cpu", dtype="float32", attn_implementation="sdpa")
    inner = image_cache(policy).inner
    real, seen = inner._preprocess_image_like_inputs, []

    def spy(images, *args, **kwargs):
        seen.append(pipeline.flatten_images(images))
        return real(images, *args, **kwargs)

    monkeypatch.setattr(inner, "_preprocess_image_like_inputs", spy)
    a, b = [str(id_pool / "im1.png"), str(id_pool / "im2.png")], [id_pool / "im5.png", str(id_pool / "im6.png")]
    by_path = api.compare(a, b, model=policy, votes=3, max_new_tokens=4, seed=1)
    assert len(seen) == 2 and all(len(call) == 2 and all(isinstance(x, bytes) for x in call) for call in seen)
    assert seen[0] == [(id_pool / "im1.png").read_bytes(), (id_pool / "im5.png").read_bytes()]

    seen.clear()
    decoded = api.compare([load_image(str(p)) for p in a], [load_image(str(p)) for p in b], model=policy, votes=3,
                          max_new_tokens=4, seed=1)
    assert decoded == by_path
    assert seen and all(isinstance(x, Image.Image) for call in seen for x in call)
