"""The generation-backend interface of stage 1, and its transformers implementation.

A backend answers a batch of `GenRequest`s — one prompt (chat messages + images) and the number `n` of sampled
completions wanted from it — with `n` texts per request. Voting builds one request per (pair, image order) with n
samples, so the images of a request are encoded once and the backend decides how to share the prefill:
transformers `generate` with ``num_return_sequences`` (this module), vLLM with ``SamplingParams(n=...)``
(`vllm_backend`).

Reproducibility: `generate` receives a `batch_seed` and each request carries its own `seed`. The transformers
backend seeds torch once per batch (so a batch re-run after a crash reproduces its answers exactly on the same
device); vLLM seeds every request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence


@dataclass(frozen=True)
class GenRequest:
    """One prompt and how many sampled completions it needs.

    messages: chat messages whose image placeholders match `images` in number and order.
    images: decoded RGB PIL images, shown in this order.
    n: completions wanted (>= 1). seed: per-request seed (backends that can seed one request use it).
    """

    messages: list
    images: tuple
    n: int
    seed: int


class GenerationBackend(Protocol):
    name: str

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
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.policy = policy
        self.batch_size = batch_size

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
