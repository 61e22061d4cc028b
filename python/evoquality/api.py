"""The Python API for using a quality model: score images, compare two images, or build a reusable scorer.

    import evoquality.api as eq
    eq.score(["a.jpg", "b.jpg"], model="ckpt/")          # -> array([3.91, 2.47]); NaN = answer did not parse
    eq.score(["a.jpg"], model="piqe")                      # classical, lower = better: see .higher_better
    eq.compare("a.jpg", "b.jpg", model="ckpt/", votes=8)   # -> Preference(winner="a", votes_a=6, votes_b=2, ...)
    scorer = eq.create_scorer("ckpt/", mode="mean", n_samples=8); scorer.higher_better  # True

A model is a checkpoint directory (loaded once and cached) or an already loaded `modeling.Policy`. Scorers follow
pyiqa's convention: a factory and a `higher_better` flag, so code that ranks images can stay direction-agnostic.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from evoquality.evaluation.scorers import REFERENCE_SCORERS, SCORE_DEFAULTS, ModelScorer, ReferenceScorer, load_pil

Scorer = Union[ModelScorer, ReferenceScorer]


@functools.lru_cache(maxsize=2)
def _cached_policy(path: str, device: Optional[str], dtype: str):
    from evoquality.modeling import load_policy

    return load_policy(path, device=device, dtype=dtype)


def _policy(model, device, dtype):
    if isinstance(model, (str, Path)):
        return _cached_policy(str(Path(model).resolve()), device, dtype)
    if hasattr(model, "model") and hasattr(model, "processor"):
        return model
    raise TypeError(f"model must be a checkpoint directory or a loaded Policy, got {type(model).__name__}")


def create_scorer(model, *, mode: str = SCORE_DEFAULTS.mode, n_samples: Optional[int] = None,
                  temperature: float = SCORE_DEFAULTS.temperature, max_new_tokens: int = SCORE_DEFAULTS.max_new_tokens,
                  batch_size: int = SCORE_DEFAULTS.batch_size, seed: int = SCORE_DEFAULTS.seed,
                  device: Optional[str] = None, dtype: str = SCORE_DEFAULTS.dtype) -> Scorer:
    """A scorer with ``.score(images, refs=None) -> ScoreResult`` and ``.higher_better``.

    model: a classical metric name ("piqe"; "psnr"/"ssim" need refs), a checkpoint directory, or a Policy.
    mode: "greedy" (one deterministic answer per image) or "mean" (mean of n_samples sampled answers). The defaults
    are `evaluation.scorers.ScoreSettings`'; n_samples unset: its n_samples in mode "mean", 0 (no sampling) in
    "greedy".
    """
    if isinstance(model, str) and model in REFERENCE_SCORERS:
        return REFERENCE_SCORERS[model]()
    if isinstance(model, (str, Path)) and not Path(model).is_dir():
        raise ValueError(f"model must be one of {sorted(REFERENCE_SCORERS)} or a checkpoint directory, got {model!r}")
    if n_samples is None:
        n_samples = SCORE_DEFAULTS.n_samples if mode == "mean" else 0
    return ModelScorer(_policy(model, device, dtype), n_samples=n_samples, mode=mode, temperature=temperature,
                       max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed, name=str(model))


def score(images, model=None, *, refs=None, **kwargs) -> np.ndarray:
    """Quality scores (N,) of `images` (paths, PIL images or uint8 arrays; one image is wrapped into a list).

    The scale and direction are the scorer's (the model: 1-5, higher better; PIQE: 0-100, lower better). NaN marks
    an image with no score (unreadable, or an answer that did not parse) — never a substitute value.
    kwargs go to `create_scorer`.
    """
    if model is None:
        raise ValueError("model is required: a checkpoint directory, a loaded Policy, or one of "
                         f"{sorted(REFERENCE_SCORERS)}")
    scorer = model if hasattr(model, "score") and hasattr(model, "higher_better") else create_scorer(model, **kwargs)
    if not isinstance(images, (list, tuple)):
        images = [images]
    if refs is not None and not isinstance(refs, (list, tuple)):
        refs = [refs]
    return scorer.score(list(images), refs).scores


@dataclass(frozen=True)
class Preference:
    """The outcome of K comparison votes between image a and image b.

    winner: "a" | "b" | "tie" (equal valid votes, including none). p_a: votes_a / valid votes (NaN with none).
    invalid: answers that did not parse (not votes, docs/method.md "Stage 1").
    """

    winner: str
    votes_a: int
    votes_b: int
    invalid: int

    @property
    def p_a(self) -> float:
        valid = self.votes_a + self.votes_b
        return self.votes_a / valid if valid else math.nan


def compare(a, b, *, model, votes: int = SCORE_DEFAULTS.n_samples, temperature: float = SCORE_DEFAULTS.temperature,
            max_new_tokens: int = SCORE_DEFAULTS.max_new_tokens, seed: int = SCORE_DEFAULTS.seed,
            device: Optional[str] = None, dtype: str = SCORE_DEFAULTS.dtype) -> Union[Preference, list[Preference]]:
    """Ask the model which image has better quality, `votes` times with sampling.

    The votes are stage 1's (docs/method.md "Stage 1"): the comparison prompt is position-biased, so half of the
    votes show (a, b) and half (b, a), the odd vote's order a seeded coin flip (`labelling.votes`, the balanced
    design); each order is one request with its own seed, and the answers are mapped back to a/b and tallied by
    `ops.vote_tally` through `labelling.labels.compare_labels`. Pair k of a list is stage 1's pair id k, so a list
    gets the votes stage 1 would give those pairs with the same seed. a, b: single images, or equal-length lists
    (-> a list). The defaults are the scoring ones (`evaluation.scorers.ScoreSettings`): as many votes as a mean
    score has samples.
    """
    from evoquality.labelling.backends import TransformersBackend

    if votes < 1:
        raise ValueError(f"votes must be >= 1, got {votes}")
    single = not isinstance(a, (list, tuple))
    a_list, b_list = ([a], [b]) if single else (list(a), list(b))
    if len(a_list) != len(b_list):
        raise ValueError(f"a and b must have the same length, got {len(a_list)} and {len(b_list)}")
    backend = TransformersBackend(_policy(model, device, dtype))
    out = vote_pairs(backend, zip(a_list, b_list), votes=votes, temperature=temperature,
                     max_new_tokens=max_new_tokens, seed=seed)
    return out[0] if single else out


def _shown(image, prepared: dict):
    """What a request carries for `image`: a path as the backend prepared it (raises `ImageRejected` with the
    reason, as decoding it would), or an image given decoded (PIL image, array) as a PIL image."""
    from evoquality.io.load import ImageRejected

    if not isinstance(image, (str, Path)):
        return load_pil(image)
    found = prepared[str(image)]
    if found.rejected:
        raise ImageRejected(found.rejected)
    return found.image


def vote_pairs(backend, pairs, *, votes: int, temperature: float, max_new_tokens: int,
               seed: int) -> list[Preference]:
    """`compare`'s votes through any stage-1 generation backend (`labelling.backends`): pairs of images in, one
    Preference per pair out.

    Image paths take stage 1's route: the backend reads and checks each pair's files once (`prepare_images`), so the
    transformers backend's requests carry the paths, preprocessed in one native call with no decoded image in
    between. Images given decoded go to the backend as PIL images.
    """
    from evoquality import prompts
    from evoquality.io.load import DEFAULT_MAX_PIXELS
    from evoquality.labelling.labels import compare_labels
    from evoquality.labelling.votes import assemble_answers, derive_seed, encode_orders, pair_requests, vote_orders

    messages = prompts.compare_messages()
    rows, records = [], {}
    for pid, (x, y) in enumerate(pairs):
        swapped = vote_orders(seed, pid, votes, "balanced")
        # Each pair's files are prepared right before its generate call: the backend's cache holds one pair's.
        files = [str(image) for image in (x, y) if isinstance(image, (str, Path))]
        prepared = backend.prepare_images(files, max_pixels=DEFAULT_MAX_PIXELS) if files else {}
        requests = pair_requests(messages, _shown(x, prepared), _shown(y, prepared), swapped, seed, pid)
        # One generate call per pair, seeded like stage 1's batches (runner._generate) with the pair id.
        texts = backend.generate([r for _, r in requests], max_new_tokens=max_new_tokens, temperature=temperature,
                                 batch_seed=derive_seed(seed, pid, 0xBA7C))
        answers, _ = assemble_answers(swapped, {flag: t for (flag, _), t in zip(requests, texts)},
                                      prompts.parse_choice)
        rows.append({"pair": pid, "image_i": "a", "image_j": "b"})
        records[pid] = {"orders": encode_orders(swapped), "answers": answers}
    labels, _ = compare_labels(rows, records, label="hard", min_margin=0, no_votes="tie")
    return [Preference("a" if r["p_star"] == 1.0 else "b" if r["p_star"] == 0.0 else "tie", r["votes_i"],
                       r["votes_j"], r["invalid"]) for r in labels]


def clear_cache() -> None:
    """Forget the loaded checkpoints (frees their memory)."""
    _cached_policy.cache_clear()


__all__ = ["Preference", "Scorer", "clear_cache", "compare", "create_scorer", "score", "vote_pairs"]
