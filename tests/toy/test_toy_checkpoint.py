"""The shipped toy checkpoint's architecture is what `toy_config` builds, whatever the tiny model's defaults (the
measured toy results depend on those exact weights)."""

import json

from evoquality.tiny_model import build_tokenizer
from evoquality.toy.base_model import SHIPPED, WarmupRecipe, toy_config


def test_toy_config_builds_the_shipped_architecture():
    recipe = WarmupRecipe()
    built = json.loads(toy_config(build_tokenizer(recipe.vocab_size), recipe).to_json_string())  # as saved
    shipped = json.loads((SHIPPED / "config.json").read_text())
    for part in ("text_config", "vision_config"):
        assert {k: v for k, v in built[part].items() if k != "dtype"} == \
            {k: v for k, v in shipped[part].items() if k != "dtype"}, part
    assert shipped["text_config"]["head_dim"] == 16  # the shipped weights' heads (vLLM-CPU needs >= 32)
