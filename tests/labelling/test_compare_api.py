"""`api.compare` is stage 1's voting: the same orders, the same per-order requests and seeds, the same tally."""

from evoquality import api
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
