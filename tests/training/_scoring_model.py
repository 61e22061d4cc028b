"""A tiny Qwen2.5-VL that answers the scoring prompt in the expected format, for the stage-2 tests.

The random tiny model never writes a parseable `\\boxed{score}`, so every reward would be NaN and GRPO would have
no signal. A short supervised warm-up on "\\boxed{X.YZ}" answers with random scores gives a policy whose sampled
scores parse and spread (and a few do not parse).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from evoquality.modeling import load_policy
from evoquality.prompts import score_messages


# Pixel-value bands of dark and bright images (the learning test's two sets).
DARK, BRIGHT = (0, 106), (150, 256)


def random_image(rng: np.random.Generator, size: int = 56, band: tuple[int, int] = (0, 256)) -> Image.Image:
    return Image.fromarray(rng.integers(band[0], band[1], (size, size, 3)).astype("uint8"))


def make_scoring_model(src: Path, out: Path, *, steps: int = 80, batch: int = 8, seed: int = 0,
                       dark_scores_higher: bool = False) -> Path:
    """Warm `src` up into `out`: `steps` Adam steps of teacher forcing on random images with random scores.

    dark_scores_higher: half the images dark, half bright; dark ones answered from U(2.5, 5), bright ones from
    U(1, 3.5). The model then looks at the image (the tiny random vision path needs ~200 steps for it), and
    prefers dark images: the opposite of what the learning test rewards, so only a correct reward sign flips it.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    policy = load_policy(src, device="cpu", dtype="float32", attn_implementation="sdpa")
    model, processor = policy.model, policy.processor
    tok = processor.tokenizer
    prompt = processor.apply_chat_template(score_messages(), add_generation_prompt=True, tokenize=False)
    end = tok.convert_tokens_to_ids("<|im_end|>")
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        if dark_scores_higher:
            dark = rng.random(batch) < 0.5
            images = [random_image(rng, 56, DARK if d else BRIGHT) for d in dark]
            scores = np.where(dark, rng.uniform(2.5, 5.0, batch), rng.uniform(1.0, 3.5, batch))
        else:
            images = [random_image(rng, int(rng.choice([28, 56]))) for _ in range(batch)]
            scores = rng.uniform(1.0, 5.0, batch)
        enc = processor(images=images, text=[prompt] * batch, return_tensors="pt", padding=True)
        answers = [tok(f"\\boxed{{{s:.2f}}}", add_special_tokens=False)["input_ids"] + [end] for s in scores]
        width = max(len(a) for a in answers)
        ans = torch.full((batch, width), tok.pad_token_id)
        ans_mask = torch.zeros(batch, width, dtype=torch.long)
        for k, a in enumerate(answers):
            ans[k, : len(a)] = torch.tensor(a)
            ans_mask[k, : len(a)] = 1
        ids = torch.cat([enc["input_ids"], ans], 1)
        mask = torch.cat([enc["attention_mask"], ans_mask], 1)
        labels = torch.cat([torch.full_like(enc["input_ids"], -100), ans.masked_fill(ans_mask == 0, -100)], 1)
        extra = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask")}
        if "mm_token_type_ids" in extra:
            extra["mm_token_type_ids"] = torch.cat([extra["mm_token_type_ids"], torch.zeros_like(ans)], 1)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels, **extra).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
