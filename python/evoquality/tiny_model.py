"""An offline tiny Qwen2.5-VL: real architecture, random weights, a tokenizer trained in memory on our prompts.

Tests and the embedded default need a checkpoint that exists without a model hub. This one has the real
Qwen2.5-VL layout (vision tower with window attention, mRoPE text decoder, the Qwen special tokens and chat
template), so every code path that loads a real checkpoint — `load_policy`, generation, TRL, vLLM — runs unchanged
on it. It is saved with `save_pretrained` in a published checkpoint's file layout (`preprocessor_config.json`, video
processor config, tokenizer, chat template, all naming the stock `Qwen2_5_VLProcessor`) and reloaded by the same
loader as a real checkpoint.

CLI: ``evoquality make-tiny-model DIR [--seed S]``.
"""

from __future__ import annotations

import json
from pathlib import Path

from evoquality import prompts

# Qwen's special tokens; ids follow the order below, right after the byte-level BPE vocabulary.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# Images are small so a CPU forward stays cheap: at most 112x112 px = 16 merged visual tokens.
TINY_MIN_PIXELS = 28 * 28
TINY_MAX_PIXELS = 112 * 112


def _training_corpus() -> list[str]:
    """Texts the tiny BPE is trained on: the prompts, the answer format, and the numbers answers contain."""
    numbers = [f"{x / 100:.2f}" for x in range(100, 501)] + [str(i) for i in range(10)]
    answers = [f"The image looks sharp. \\boxed{{{n}}}" for n in numbers[::7]]
    answers += ["\\boxed{0}", "\\boxed{1}", "The first image is better. \\boxed{0}",
                "The second image is better. \\boxed{1}", "blur noise compression artifacts colour detail"]
    return [prompts.COMPARE_PROMPT, prompts.SCORE_PROMPT, prompts.REASONING_SUFFIX, "You are a helpful assistant.",
            *numbers, *answers]


def build_tokenizer(vocab_size: int = 512):
    """A byte-level BPE fast tokenizer with the Qwen special tokens and the Qwen-VL chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from evoquality.processing import QWEN_VL_CHAT_TEMPLATE

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable: no unknown token
        show_progress=False,
    )
    tok.train_from_iterator(_training_corpus(), trainer=trainer)
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=QWEN_VL_CHAT_TEMPLATE,
        padding_side="left",  # batched generation pads on the left, as Qwen's tokenizer does
    )


def tiny_config(tokenizer, **overrides):
    """Qwen2.5-VL config of ~200 K parameters; `overrides` update the `text` / `vision` dicts or the top level."""
    from transformers import Qwen2_5_VLConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        # head_dim 32 = hidden_size / heads: vLLM derives head_dim that way, and its CPU attention supports 32, 64,
        # 80, ... but not 16. Same parameter count as 4 heads of 16 (2 query heads share one key/value head).
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=2048,
        # mRoPE splits head_dim/2 rotary frequencies into (temporal, height, width) sections, in Qwen2.5-VL's
        # proportions (16, 24, 24 of 64).
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [4, 6, 6]},
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    vision = dict(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        out_hidden_size=64,
        fullatt_block_indexes=[1],
        window_size=56,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
    )
    text.update(overrides.pop("text", {}))
    vision.update(overrides.pop("vision", {}))
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
        **overrides,
    )


def make_tiny_model(out_dir: str | Path, *, seed: int = 0, max_pixels: int = TINY_MAX_PIXELS) -> Path:
    """Build and save a tiny random Qwen2.5-VL checkpoint + processor in `out_dir`; deterministic for `seed`."""
    if max_pixels < TINY_MIN_PIXELS:
        raise ValueError(f"max_pixels must be >= {TINY_MIN_PIXELS} (one merged 28x28 visual token), got {max_pixels}")
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from evoquality.processing import QwenVLImageTextProcessor

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    config = tiny_config(tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config).eval()
    eos = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    model.generation_config = GenerationConfig(
        eos_token_id=eos, pad_token_id=tokenizer.pad_token_id, do_sample=True, temperature=1.0, top_k=0, top_p=1.0
    )
    image_processor = Qwen2VLImageProcessorPil(min_pixels=TINY_MIN_PIXELS, max_pixels=max_pixels)
    processor = QwenVLImageTextProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=tokenizer.chat_template
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / "evoquality_tiny.json").write_text(
        json.dumps({"seed": seed, "max_pixels": max_pixels, "what": "tiny random Qwen2.5-VL for tests"}, indent=2)
    )
    return out
