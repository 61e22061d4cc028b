"""The toy base model: a ~0.7 M-parameter Qwen2.5-VL whose weak sense of image quality comes from a brief
supervised warm-up on the warm-up photos only (`world.WARMUP_PHOTOS`). It stands in for a pretrained VLM's
zero-shot prior: better than chance on the held-out photos, clearly imperfect, with noisy sampled answers.

Two phases, both seeded:

A. Vision pretraining (the role CLIP-style pretraining plays for a real VLM's vision tower): the vision tower and a
   throwaway linear head learn to rank two levels of one crop (pairwise logistic loss). The head reads the mean of
   the *unit-normalised* merged tokens: the language model RMS-normalises every token, so quality must live in the
   direction of a visual token, not its length, or the language model cannot see it.
B. Supervised fine-tuning on answers in the project's prompt format: score answers ``\\boxed{q}`` with q the toy MOS
   plus Gaussian noise, and comparison answers ``\\boxed{0|1}`` with a share of flipped labels. Short on purpose.

Every step draws fresh random crops of the warm-up photos (no fixed training set to memorise). The log of both
phases is written beside the checkpoint (``warmup_log.jsonl``). Rebuild the shipped checkpoint with

    python -m evoquality.toy.base_model python/evoquality/toy/base_model_weights
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from evoquality.toy import world

SHIPPED = Path(__file__).resolve().parent / "base_model_weights"
MARKER = "evoquality_toy.json"


@dataclass(frozen=True)
class WarmupRecipe:
    seed: int = 0
    vocab_size: int = 1024          # the tiny BPE stops merging at ~640 tokens: prompts become ~100 tokens
    text_hidden: int = 128
    vision_hidden: int = 64
    vision_steps: int = 600         # phase A
    vision_lr: float = 1e-3
    vision_pairs_per_step: int = 16
    sft_steps: int = 1000           # phase B
    sft_batch: int = 16
    sft_lr: float = 1e-3            # language model and merger
    sft_vision_lr: float = 1e-4     # the pretrained tower moves slowly
    score_share: float = 0.25       # share of score examples; the rest are comparisons
    score_noise: float = 0.6        # std of the Gaussian noise on the toy MOS in score answers
    compare_flip: float = 0.1       # share of comparison answers flipped


def toy_config(tokenizer, recipe: WarmupRecipe):
    from evoquality.tiny_model import tiny_config

    h, v = recipe.text_hidden, recipe.vision_hidden
    return tiny_config(
        tokenizer,
        # The shipped weights were trained with 16-dimensional heads: pinned here, whatever the tiny default.
        text={"hidden_size": h, "intermediate_size": 2 * h, "num_attention_heads": h // 16,
              "num_key_value_heads": max(1, h // 32), "head_dim": 16,
              "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [2, 3, 3]}},
        vision={"hidden_size": v, "intermediate_size": 2 * v, "num_heads": max(1, v // 16), "out_hidden_size": h},
    )


class _Crops:
    """Fresh random crops of the warm-up photos, distorted at chosen levels (the warm-up's only data)."""

    def __init__(self, photos, rng: np.random.Generator):
        from evoquality.data.distortions import distortion

        self.photos = [world.photo(name) for name in photos]
        self.dist = {t: distortion(t) for t in world.TYPES}
        self.rng = rng

    def draw(self, n_levels: int) -> list[world.ToyImage]:
        """One crop, one type, `n_levels` distinct levels (mildest first)."""
        from PIL import Image

        r = self.rng
        arr = self.photos[r.integers(len(self.photos))]
        h, w = arr.shape[:2]
        y, x = int(r.integers(0, h - world.CROP + 1)), int(r.integers(0, w - world.CROP + 1))
        crop = arr[y:y + world.CROP, x:x + world.CROP]
        t = world.TYPES[r.integers(len(world.TYPES))]
        d, noise_seed = self.dist[t], int(r.integers(1 << 31))
        levels = sorted((r.choice(len(world.LEVELS), n_levels, replace=False) + 1).tolist())
        # One noise field for all levels of the crop (as the synthetic benchmark does).
        return [world.ToyImage("warmup", t, lv, Image.fromarray(d.fn(crop, d.params[lv - 1],
                                                                      np.random.default_rng(noise_seed))))
                for lv in levels]


def _pretrain_vision(model, image_processor, crops: _Crops, recipe: WarmupRecipe, log) -> None:
    import torch
    import torch.nn.functional as F

    visual = model.model.visual
    head = torch.nn.Linear(recipe.text_hidden, 1)
    opt = torch.optim.AdamW([*visual.parameters(), *head.parameters()], lr=recipe.vision_lr)
    for step in range(1, recipe.vision_steps + 1):
        items = [im for _ in range(recipe.vision_pairs_per_step) for im in crops.draw(2)]
        batch = image_processor(images=[im.image for im in items], return_tensors="pt")
        tokens = visual(batch["pixel_values"], grid_thw=batch["image_grid_thw"]).pooler_output
        pooled = F.normalize(tokens, dim=-1).view(len(items), -1, tokens.shape[-1]).mean(1)
        pred = head(pooled).squeeze(-1)
        # items come in (milder, stronger) pairs: the milder level must rank higher.
        loss = F.softplus(-(pred[0::2] - pred[1::2])).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == recipe.vision_steps:
            log({"phase": "vision", "step": step, "rank_loss": round(loss.item(), 4)})


def _sft_batch(processor, tokenizer, examples):
    """Chat-formatted prompts + answers; the loss sees only the answer tokens."""
    texts, images = [], []
    for messages, ims, answer in examples:
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        texts.append(prompt + answer + "<|im_end|>")
        images += ims
    enc = processor(text=texts, images=images, padding=True, padding_side="right", return_tensors="pt")
    labels = enc["input_ids"].clone()
    labels[enc["attention_mask"] == 0] = -100
    for b, (_, _, answer) in enumerate(examples):
        n_answer = len(tokenizer(answer + "<|im_end|>")["input_ids"])
        n_real = int(enc["attention_mask"][b].sum())
        labels[b, : n_real - n_answer] = -100
    enc["labels"] = labels
    return enc


def _sft_examples(crops: _Crops, recipe: WarmupRecipe, n: int):
    from evoquality.prompts import compare_messages, score_messages

    r, out = crops.rng, []
    for _ in range(n):
        if r.random() < recipe.score_share:
            (im,) = crops.draw(1)
            q = float(np.clip(world.quality(im.level) + r.normal(0.0, recipe.score_noise), 1.0, 5.0))
            out.append((score_messages(), [im.image], f"\\boxed{{{q:.2f}}}"))
        else:
            a, b = crops.draw(2)  # a is the milder level: the better image
            if r.random() < 0.5:
                a, b = b, a
            better = 0 if a.level < b.level else 1
            if r.random() < recipe.compare_flip:
                better = 1 - better
            out.append((compare_messages(), [a.image, b.image], f"\\boxed{{{better}}}"))
    return out


def _finetune(model, processor, tokenizer, crops: _Crops, recipe: WarmupRecipe, log) -> None:
    import torch

    vision_ids = {id(p) for p in model.model.visual.parameters()}
    rest = [p for p in model.parameters() if id(p) not in vision_ids]
    opt = torch.optim.AdamW([{"params": rest, "lr": recipe.sft_lr},
                             {"params": list(model.model.visual.parameters()), "lr": recipe.sft_vision_lr}])
    for step in range(1, recipe.sft_steps + 1):
        loss = model(**_sft_batch(processor, tokenizer, _sft_examples(crops, recipe, recipe.sft_batch))).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == recipe.sft_steps:
            log({"phase": "sft", "step": step, "answer_loss": round(loss.item(), 4)})


def build_toy_base_model(out_dir, recipe: WarmupRecipe = WarmupRecipe(), *, progress: bool = True) -> Path:
    """Run the warm-up and save the checkpoint (+ processor, log, provenance) in `out_dir`."""
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from evoquality.processing import QwenVLImageTextProcessor
    from evoquality.tiny_model import TINY_MAX_PIXELS, TINY_MIN_PIXELS, build_tokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "warmup_log.jsonl"
    log_path.write_text("")
    t0 = time.monotonic()

    def log(row: dict) -> None:
        row = {**row, "elapsed_s": round(time.monotonic() - t0, 1)}
        with open(log_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if progress:
            print(json.dumps(row), flush=True)

    tokenizer = build_tokenizer(recipe.vocab_size)
    image_processor = Qwen2VLImageProcessorPil(min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS)
    processor = QwenVLImageTextProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                         chat_template=tokenizer.chat_template)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = Qwen2_5_VLForConditionalGeneration(toy_config(tokenizer, recipe))
        crops = _Crops(world.WARMUP_PHOTOS, np.random.default_rng([recipe.seed, 0xBA5E]))
        model.train()
        _pretrain_vision(model, image_processor, crops, recipe, log)
        _finetune(model, processor, tokenizer, crops, recipe, log)
    model.eval()
    eos = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    model.generation_config = GenerationConfig(
        eos_token_id=eos, pad_token_id=tokenizer.pad_token_id, do_sample=True, temperature=1.0, top_k=0, top_p=1.0
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / MARKER).write_text(json.dumps({
        "what": "EvoQuality toy base model: tiny Qwen2.5-VL with a weak IQA prior from a supervised warm-up on "
                f"the photos {list(world.WARMUP_PHOTOS)} only (disjoint from the evolution pool and the held-out "
                "benchmark); not a model of real image quality",
        "recipe": asdict(recipe), "torch": torch.__version__,
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "build_seconds": round(time.monotonic() - t0, 1),
    }, indent=2))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    build_toy_base_model(args.out_dir, WarmupRecipe(seed=args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
