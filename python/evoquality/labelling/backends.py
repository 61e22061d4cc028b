"""The generation-backend interface of stage 1, and its transformers implementation.

A backend answers a batch of `GenRequest`s — one prompt (chat messages + images) and the number `n` of sampled
completions wanted from it — with `n` texts per request. Voting builds one request per (pair, image order) with n
samples, so the images of a request are encoded once and the backend decides how to share the prefill:
transformers `generate` with ``num_return_sequences`` (this module), vLLM with ``SamplingParams(n=...)``
(`vllm_backend`).

Images: before a batch's requests are built, the runner hands the backend the batch's image paths once
(`prepare_images`). The transformers backend reads and checks each header and preprocesses all of them in one native
batch call into its processor's cache (`io.preprocess_cache`), and its requests carry the paths: no decoded image
exists in between. vLLM takes decoded images (its ``multi_modal_data``) and preprocesses them itself, so its backend
decodes each image once (`decode_images`). Either way an unusable image is a `PreparedImage` with the reason, which
the runner counts as a skip, and a recovered decoder warning is kept per image for the summary.

Reproducibility: `generate` receives a `batch_seed` and each request carries its own `seed`. The transformers
backend seeds torch once per batch (so a batch re-run after a crash reproduces its answers exactly on the same
device); vLLM seeds every request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from evoquality.io.load import ImageRejected, decode_warning, load_image


@dataclass(frozen=True)
class GenRequest:
    """One prompt and how many sampled completions it needs.

    messages: chat messages whose image placeholders match `images` in number and order.
    images: the images, shown in this order, in the form the backend takes: `PreparedImage.image` (a path the
        transformers backend has preprocessed, a decoded image for vLLM), or images `api.compare` was given decoded.
    n: completions wanted (>= 1). seed: per-request seed (backends that can seed one request use it).
    """

    messages: list
    images: tuple
    n: int
    seed: int


@dataclass(frozen=True)
class PreparedImage:
    """One image of a batch: `image` is what requests carry for it (None when rejected); `warning` the recovered
    decoder warning ('' when clean); `rejected` why it cannot be used ('' when it can)."""

    image: Any
    warning: str = ""
    rejected: str = ""


def decode_images(paths: Sequence[str], *, max_pixels: int) -> dict[str, PreparedImage]:
    """Each image decoded once (`io.load.load_image`): for backends that take decoded images."""
    out = {}
    for path in dict.fromkeys(paths):
        try:
            image = load_image(path, max_pixels)
            out[path] = PreparedImage(image, warning=decode_warning(image))
        except ImageRejected as e:
            out[path] = PreparedImage(None, rejected=str(e))
    return out


class GenerationBackend(Protocol):
    name: str

    def prepare_images(self, paths: Sequence[str], *, max_pixels: int) -> dict[str, PreparedImage]:
        """Read and check the images of one batch, each once, for the requests of that batch (see the module)."""
        ...

    def generate(
        self, requests: Sequence[GenRequest], *, max_new_tokens: int, temperature: float, batch_seed: int
    ) -> list[list[str]]:
        """Return, for each request, its `n` sampled completion texts (decoded, special tokens stripped)."""
        ...


def check_outputs(requests: Sequence[GenRequest], outputs: Sequence[Sequence[str]], backend: str) -> list[list[str]]:
    """Validate a backend's answer shape: one list of exactly `n` strings per request, in request order."""
    if len(outputs) != len(requests):
        raise RuntimeError(f"backend {backend!r} returned {len(outputs)} results for {len(requests)} requests")
    checked = []
    for idx, (req, texts) in enumerate(zip(requests, outputs)):
        texts = list(texts)
        if len(texts) != req.n:
            raise RuntimeError(
                f"backend {backend!r} returned {len(texts)} completions for request {idx}, wanted {req.n}")
        if not all(isinstance(t, str) for t in texts):
            raise RuntimeError(f"backend {backend!r} returned a non-string completion for request {idx}")
        checked.append(texts)
    return checked


class TransformersBackend:
    """transformers `generate` through `evoquality.sampling.sample_completions` (CPU and GPU; the default).

    Requests are grouped by `n` (one `generate` call handles one n): with the balanced vote design every request of
    a batch has the same n, so a batch is a single call.
    """

    name = "transformers"

    def __init__(self, policy: Any, *, batch_size: int = 8):
        from evoquality.sampling import image_cache

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.policy = policy
        self.batch_size = batch_size
        self.image_cache = image_cache(policy)

    def prepare_images(self, paths: Sequence[str], *, max_pixels: int) -> dict[str, PreparedImage]:
        """Check every header, then preprocess all the batch's images in one call into the processor's cache; the
        requests carry the paths, which the processor then serves from that cache."""
        from functools import partial

        from evoquality.io.load import image_input

        self.image_cache.clear()  # the previous batch's images
        found = self.image_cache.prepare(paths, loader=partial(image_input, max_pixels=max_pixels))
        return {path: PreparedImage(None if p.rejected else path, p.warning, p.rejected) for path, p in found.items()}

    def generate(
        self, requests: Sequence[GenRequest], *, max_new_tokens: int, temperature: float, batch_seed: int
    ) -> list[list[str]]:
        from evoquality.sampling import sample_completions

        out: list = [None] * len(requests)
        by_n: dict[int, list[int]] = {}
        for idx, req in enumerate(requests):
            by_n.setdefault(req.n, []).append(idx)
        for group, n in enumerate(sorted(by_n)):
            idxs = by_n[n]
            results = sample_completions(
                self.policy,
                [(requests[i].messages, list(requests[i].images)) for i in idxs],
                n=n,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                do_sample=True,
                batch_size=self.batch_size,
                # Seed once per batch; later groups continue the same RNG stream, which is still reproducible.
                seed=batch_seed if group == 0 else None,
            )
            for i, res in zip(idxs, results):
                out[i] = list(res.texts)
        return check_outputs(requests, out, self.name)
