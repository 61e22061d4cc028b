"""The two prompts of EvoQuality and the parsers of the model's answers (docs/method.md, verbatim).

The answer is the content of the *last* ``\\boxed{...}`` in the completion: models often box intermediate values in
their reasoning, and the final answer comes last. Parsing never invents data: an answer that does not parse is
``None`` (a vote that is not a vote, a rollout with no reward), never a random or default value.
"""

from __future__ import annotations

import math
import re
from typing import Optional

REASONING_SUFFIX = (
    "You FIRST think about the reasoning process as an internal monologue and then provide the final answer. "
    "The final answer MUST BE put in \\boxed{}."
)

COMPARE_PROMPT = (
    "You are performing an image quality assessment task. Compare the two images and decide which one has better "
    "perceptual quality. Answer strictly with the index of the better image: 0 if the first image is better, or 1 "
    "if the second image is better."
)

SCORE_PROMPT = (
    "You are doing the image quality assessment task. Here is the question: What is your overall rating on the "
    "quality of this picture? The rating should be a float between 1 and 5, rounded to two decimal places, with 1 "
    "representing very poor quality and 5 representing excellent quality."
)

SCORE_MIN, SCORE_MAX = 1.0, 5.0

_BOXED = "\\boxed{"
# ASCII digits only: unicode digits ("３", "٣") are not a well-formed answer, and float() would silently accept them.
_FLOAT = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?", re.ASCII)


def _user_messages(n_images: int, text: str) -> list[dict]:
    content: list[dict] = [{"type": "image"} for _ in range(n_images)]
    content.append({"type": "text", "text": f"{text} {REASONING_SUFFIX}"})
    return [{"role": "user", "content": content}]


def compare_messages() -> list[dict]:
    """Chat messages of the comparison prompt: two image placeholders first, then the text (docs/method.md, stage 1)."""
    return _user_messages(2, COMPARE_PROMPT)


def score_messages() -> list[dict]:
    """Chat messages of the scoring prompt: one image placeholder, then the text (docs/method.md, stage 2)."""
    return _user_messages(1, SCORE_PROMPT)


def last_boxed(text: str) -> Optional[str]:
    """Content of the last ``\\boxed{...}`` with balanced braces, or None when there is none.

    The last box decides: when it never closes (a completion cut off by the token budget inside its final answer),
    the answer is unparseable — an earlier box is an intermediate value of the reasoning, not the answer.
    """
    if not isinstance(text, str):
        return None
    start = text.rfind(_BOXED)
    if start == -1:
        return None
    depth, i = 1, start + len(_BOXED)
    while i < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return text[start + len(_BOXED) : i - 1] if depth == 0 else None


def _first_number(text: str) -> Optional[float]:
    match = _FLOAT.search(text)
    if match is None:
        return None
    value = float(match.group())
    return value if math.isfinite(value) else None


def parse_score(text: str) -> Optional[float]:
    """Quality score of a scoring answer: first number in the last box, clipped to [1, 5]; None if absent or
    non-finite (e.g. ``\\boxed{1e999}``)."""
    boxed = last_boxed(text)
    if boxed is None:
        return None
    value = _first_number(boxed)
    if value is None:
        return None
    return min(max(value, SCORE_MIN), SCORE_MAX)


def parse_choice(text: str) -> Optional[int]:
    """Index of the better image in a comparison answer (0 = first shown, 1 = second), or None.

    The first number in the last box must be exactly 0 or 1 (``1.0`` counts as 1); anything else — ``2``, ``0.5``,
    words only — is not a vote.
    """
    boxed = last_boxed(text)
    if boxed is None:
        return None
    value = _first_number(boxed)
    if value is None or value not in (0.0, 1.0):
        return None
    return int(value)
