"""Scorers: things that turn images into quality scores, each with a `higher_better` direction (pyiqa's convention).

- `ReferenceScorer`: the download-free yardsticks (`psnr`, `ssim` need the pristine reference; `piqe` does not).
- `ModelScorer`: a Qwen-VL policy asked the scoring prompt (docs/method.md): a greedy answer and the mean of N sampled
  answers per image, both parsed with `prompts.parse_score`. An answer that does not parse is NaN and counted,
  never replaced by a guess; an image that cannot be read is NaN and counted. Image files take stage 1's path: each
  batch's headers are checked and the images preprocessed in one native call, and the prompts carry the paths
  (`sampling.image_cache`); images given decoded (PIL images, arrays) go to the processor as PIL images.

Every scorer returns `ScoreResult`: scores of shape (N,) aligned with the input, NaN where there is none.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from evoquality.config_fields import option
from evoquality.evaluation import reference_metrics

SCORE_MODES = ("greedy", "mean")


@dataclass(frozen=True)
class ScoreSettings:
    """How a model scores images, and the one definition of these defaults: `ModelScorer`, `api.create_scorer`,
    `api.compare`, `evoquality score` and `evoquality eval` all take theirs from here."""

    mode: str = option("greedy", "greedy answer, or the mean of --samples sampled answers", SCORE_MODES)
    n_samples: int = option(8, "sampled answers per image whose mean is a score (0 = none)", flag="--samples")
    temperature: float = option(1.0, "sampling temperature of the sampled answers")
    max_new_tokens: int = option(256, "generation budget per answer")
    batch_size: int = option(8, "images per generation batch")
    seed: int = option(0, "random seed (the sampled answers; in `eval` also the bootstrap and the synthetic set)")
    dtype: str = option("auto", "dtype the model is loaded in (auto: the checkpoint's)")


SCORE_DEFAULTS = ScoreSettings()


@dataclass
class ScoreResult:
    """scores (N,) float64, NaN = no score; failures: reason -> count. For a model: `greedy` (N,) the parsed
    greedy answers (None when not run), `sampled` (N,) the mean of the parsed samples, `n_parsed` (N,) how many
    samples parsed, `n_samples` drawn per image. decode_warnings: images scored although their decoder warned
    (recovered data, as transformers accepts it; see evoquality.io)."""

    scores: np.ndarray
    failures: Counter = field(default_factory=Counter)
    greedy: Optional[np.ndarray] = None
    sampled: Optional[np.ndarray] = None
    n_parsed: Optional[np.ndarray] = None
    n_samples: int = 0
    decode_warnings: int = 0


def _load_rgb(image, warned: Optional[list] = None) -> np.ndarray:
    """uint8 (H, W, 3) from a path, PIL image or array; raises `ImageRejected` (with the reason) when unusable.
    A path whose decoder warned is appended to `warned`."""
    from PIL import Image

    from evoquality.io.load import ImageRejected, decode_warning, load_image

    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
            raise ImageRejected(f"array images must be uint8 (H, W) or (H, W, 3), got {arr.dtype} {arr.shape}")
        return arr
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    loaded = load_image(str(image))
    if warned is not None and decode_warning(loaded):
        warned.append(str(image))
    return np.asarray(loaded)


def _prepared_path(path: str, prepared: dict, warned: list) -> str:
    """`path` as a prompt carries it once `CachedImageProcessor.prepare` has read it; raises `ImageRejected`."""
    from evoquality.io.load import ImageRejected

    if prepared[path].rejected:
        raise ImageRejected(prepared[path].rejected)
    if prepared[path].warning:
        warned.append(path)
    return path


def load_pil(image, warned: Optional[list] = None):
    from PIL import Image

    return Image.fromarray(_load_rgb(image, warned))


class ReferenceScorer:
    """A classical metric. full_reference scorers need `refs` (one per image; None = no reference -> NaN)."""

    def __init__(self, name: str, fn: Callable, higher_better: bool, full_reference: bool):
        self.name, self._fn, self.higher_better, self.full_reference = name, fn, higher_better, full_reference

    def __repr__(self) -> str:
        return f"ReferenceScorer({self.name!r}, higher_better={self.higher_better})"

    def score(self, images: Sequence, refs: Optional[Sequence] = None, progress: bool = False) -> ScoreResult:
        from evoquality.io.load import ImageRejected

        if self.full_reference:
            if refs is None or len(refs) != len(images):
                raise ValueError(f"{self.name} is full-reference: refs must give one reference per image "
                                 f"({len(images)}), got {None if refs is None else len(refs)}")
        out = np.full(len(images), np.nan)
        failures: Counter = Counter()
        warned: list = []
        last_ref: tuple = (None, None)  # distortions of one reference are usually adjacent: decode it once
        for i, image in enumerate(_progress(images, progress, self.name)):
            if self.full_reference and refs[i] is None:
                failures["no reference"] += 1
                continue
            try:
                img = _load_rgb(image, warned)
                if self.full_reference:
                    key = str(refs[i]) if isinstance(refs[i], (str, Path)) else id(refs[i])
                    if last_ref[0] != key:
                        last_ref = (key, _load_rgb(refs[i]))
                    ref = last_ref[1]
                    if ref.shape != img.shape:
                        failures["reference size differs"] += 1
                        continue
                    out[i] = self._fn(img, ref)
                else:
                    out[i] = self._fn(img)
            except ImageRejected as exc:
                failures[f"image rejected: {str(exc).split(':')[0]}"] += 1
        return ScoreResult(out, failures, decode_warnings=len(warned))


REFERENCE_SCORERS = {
    "psnr": lambda: ReferenceScorer("psnr", reference_metrics.psnr, True, True),
    "ssim": lambda: ReferenceScorer("ssim", reference_metrics.ssim, True, True),
    "piqe": lambda: ReferenceScorer("piqe", reference_metrics.piqe, False, False),
}


def _progress(items, enabled: bool, desc: str):
    if not enabled:
        return items
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm comes with huggingface_hub; without it there is simply no bar
        return items
    return tqdm(items, desc=desc, unit="img", leave=False)


class ModelScorer:
    """Scores images with a policy and the scoring prompt.

    mode "greedy": ``scores`` = the greedy answer, and with n_samples > 0 the mean of n_samples sampled answers is
    computed too (``sampled``: the evaluation runner reports both). mode "mean": ``scores`` = the mean of
    n_samples sampled answers, no greedy pass.
    """

    higher_better = True
    full_reference = False

    def __init__(self, policy, *, n_samples: int = SCORE_DEFAULTS.n_samples, mode: str = SCORE_DEFAULTS.mode,
                 temperature: float = SCORE_DEFAULTS.temperature, max_new_tokens: int = SCORE_DEFAULTS.max_new_tokens,
                 batch_size: int = SCORE_DEFAULTS.batch_size, seed: int = SCORE_DEFAULTS.seed,
                 name: Optional[str] = None):
        if mode not in SCORE_MODES:
            raise ValueError(f"mode must be 'greedy' or 'mean', got {mode!r}")
        if n_samples < 0:
            raise ValueError(f"n_samples must be >= 0, got {n_samples}")
        if mode == "mean" and n_samples == 0:
            raise ValueError("mode='mean' needs n_samples >= 1")
        if max_new_tokens < 1 or batch_size < 1:
            raise ValueError(f"max_new_tokens and batch_size must be >= 1, got {max_new_tokens}, {batch_size}")
        self.policy, self.n_samples, self.mode = policy, n_samples, mode
        self.temperature, self.max_new_tokens = temperature, max_new_tokens
        self.batch_size, self.seed = batch_size, seed
        self.name = name or f"model:{getattr(policy, 'path', '?')}"

    def __repr__(self) -> str:
        return f"ModelScorer({self.name!r}, mode={self.mode!r}, n_samples={self.n_samples})"

    def score(self, images: Sequence, refs=None, progress: bool = False) -> ScoreResult:
        from evoquality import prompts
        from evoquality.io.load import ImageRejected
        from evoquality.sampling import image_cache, sample_completions

        n = len(images)
        greedy, sampled = np.full(n, np.nan), np.full(n, np.nan)
        n_parsed = np.zeros(n, dtype=np.int64)
        failures: Counter = Counter()
        warned: list = []
        messages = prompts.score_messages()
        batches = [range(s, min(s + self.batch_size, n)) for s in range(0, n, self.batch_size)]
        for b, idx in enumerate(_progress(batches, progress, "scoring batches")):
            files = [str(images[i]) for i in idx if isinstance(images[i], (str, Path))]
            if files:
                cache = image_cache(self.policy)
                cache.clear()  # the previous batch's images
                prepared = cache.prepare(files)
            loaded = []
            for i in idx:
                try:
                    if isinstance(images[i], (str, Path)):
                        loaded.append((i, _prepared_path(str(images[i]), prepared, warned)))
                    else:
                        loaded.append((i, load_pil(images[i])))
                except ImageRejected as exc:
                    failures[f"image rejected: {str(exc).split(':')[0]}"] += 1
            if not loaded:
                continue
            requests = [(messages, [img]) for _, img in loaded]
            if self.mode == "greedy":
                outs = sample_completions(self.policy, requests, n=1, max_new_tokens=self.max_new_tokens,
                                          do_sample=False, batch_size=len(requests))
                for (i, _), out in zip(loaded, outs):
                    value = prompts.parse_score(out.texts[0])
                    if value is None:
                        failures["greedy answer unparsed"] += 1
                    else:
                        greedy[i] = value
            if self.n_samples:
                outs = sample_completions(self.policy, requests, n=self.n_samples,
                                          max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                                          do_sample=True, batch_size=len(requests), seed=self.seed + b)
                for (i, _), out in zip(loaded, outs):
                    values = [v for v in map(prompts.parse_score, out.texts) if v is not None]
                    n_parsed[i] = len(values)
                    failures["sampled answers unparsed"] += self.n_samples - len(values)
                    if values:
                        sampled[i] = float(np.mean(values))
                    else:
                        failures["images with no parsed sample"] += 1
        main = greedy if self.mode == "greedy" else sampled
        return ScoreResult(main.copy(), failures, greedy if self.mode == "greedy" else None,
                           sampled if self.n_samples else None, n_parsed if self.n_samples else None,
                           self.n_samples, len(warned))


def failure_rates(result: ScoreResult, n_images: int) -> dict:
    """Parse-failure rates: greedy = unparsed greedy answers / images answered; sampled = unparsed samples /
    samples drawn. Images that were never answered (unreadable) are counted separately."""
    rejected = sum(v for k, v in result.failures.items() if k.startswith("image rejected"))
    answered = n_images - rejected
    out = {"images_rejected": rejected}
    if result.greedy is not None:
        out["greedy"] = result.failures["greedy answer unparsed"] / answered if answered else math.nan
    if result.n_samples:
        drawn = answered * result.n_samples
        out["sampled"] = result.failures["sampled answers unparsed"] / drawn if drawn else math.nan
    return out
