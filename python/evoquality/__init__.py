"""EvoQuality: a vision-language model improves its own sense of image quality without human labels.

Each round, (1) the model compares random image pairs K times and a majority vote gives pseudo-preferences;
(2) GRPO rewards each sampled quality score by its Thurstone fidelity to those preferences. See docs/method.md.

`import evoquality` is cheap: torch, transformers and triton are imported by the submodules that need them.
"""

from evoquality import _offline  # noqa: F401  (sets the offline flags before any Hugging Face import)

__version__ = "0.1.0"

_API = ("score", "compare", "create_scorer")


def __getattr__(name):
    # The scoring API imports torch and transformers: load it on first use, not on `import evoquality`.
    if name in _API:
        from evoquality import api

        return getattr(api, name)
    raise AttributeError(f"module 'evoquality' has no attribute {name!r}")
