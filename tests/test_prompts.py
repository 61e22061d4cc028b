import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evoquality import prompts
from evoquality.prompts import last_boxed, parse_choice, parse_score


def test_prompts_are_method_md_verbatim_with_suffix():
    (msg,) = prompts.compare_messages()
    assert msg["role"] == "user"
    kinds = [c["type"] for c in msg["content"]]
    assert kinds == ["image", "image", "text"]
    assert msg["content"][-1]["text"].startswith("You are performing an image quality assessment task.")
    assert msg["content"][-1]["text"].endswith("The final answer MUST BE put in \\boxed{}.")
    (msg,) = prompts.score_messages()
    assert [c["type"] for c in msg["content"]] == ["image", "text"]
    assert "float between 1 and 5, rounded to two decimal places" in msg["content"][-1]["text"]


def test_prompt_renders_through_tiny_chat_template(tiny_model_dir):
    from evoquality.processing import load_processor

    proc = load_processor(tiny_model_dir)
    text = proc.apply_chat_template(prompts.compare_messages(), add_generation_prompt=True, tokenize=False)
    assert text.count("<|vision_start|><|image_pad|><|vision_end|>") == 2
    assert text.endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("thinking... \\boxed{3.75}", 3.75),
        ("\\boxed{2} then finally \\boxed{4.10}", 4.10),  # last box wins
        ("\\boxed{\\text{3.5}}", 3.5),  # nested braces
        ("\\boxed{score: 2.5 out of 5}", 2.5),  # first number in the box
        ("\\boxed{7}", 5.0),  # clipped
        ("\\boxed{-3}", 1.0),
        ("\\boxed{0.5}", 1.0),
        ("\\boxed{.75e1}", 5.0),
        ("\\boxed{4.}", 4.0),
    ],
)
def test_parse_score_values(text, expected):
    assert parse_score(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "no box here, 4.5",
        "\\boxed{}",
        "\\boxed{excellent}",
        "\\boxed{nan}",
        "\\boxed{inf}",
        "\\boxed{1e999}",  # overflows to inf: not a score
        "\\boxed{3.5} and a last box cut off by the token budget: \\boxed{2",  # the last box decides, not an earlier
        "\\boxed{3.5} \\boxed{\\text{4.",
        "\\boxed{３.５}",  # full-width digits are not a well-formed answer
        "\\boxed{٣}",
        "\\boxed{4.5",  # never closed
        "boxed{4.5}",
        None,
    ],
)
def test_parse_score_rejects(text):
    assert parse_score(text) is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("\\boxed{0}", 0),
        ("\\boxed{1}", 1),
        ("\\boxed{1.0}", 1),
        ("reasoning \\boxed{0} no wait \\boxed{1}", 1),
        ("\\boxed{Image 0}", 0),
        ("\\boxed{2}", None),
        ("\\boxed{0.5}", None),
        ("\\boxed{first}", None),
        ("1", None),
        ("\\boxed{１}", None),
        ("\\boxed{0} then, cut off: \\boxed{1", None),  # a truncated last box is no vote, not the earlier one
    ],
)
def test_parse_choice(text, expected):
    assert parse_choice(text) == expected


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_parsers_never_raise_and_stay_in_range(text):
    score = parse_score(text)
    assert score is None or (1.0 <= score <= 5.0 and math.isfinite(score))
    assert parse_choice(text) in (None, 0, 1)


@settings(max_examples=300, deadline=None)
@given(prefix=st.text(), value=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
       junk=st.text(alphabet="abc xyz{}", max_size=10))
def test_parse_score_recovers_a_boxed_float(prefix, value, junk):
    # Whatever came before, a final well-formed box decides the answer.
    text = f"{prefix} \\boxed{{{value!r}}}"
    assert parse_score(text) == pytest.approx(min(max(value, 1.0), 5.0))
    assert last_boxed(text) == repr(value)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["{", "}", "\\boxed{", "3", "x", " "]), max_size=30))
def test_brace_soup_never_raises(parts):
    text = "".join(parts)
    boxed = last_boxed(text)
    assert boxed is None or boxed.count("{") == boxed.count("}")
