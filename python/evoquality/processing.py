"""The Qwen2.5-VL / Qwen2-VL processor EvoQuality builds: tokenizer + image processor + chat template, no video.

The stock processors also construct a video processor, which needs torchvision; torchvision does not import beside
the CPU build of torch (ENVIRONMENT.md) and EvoQuality never feeds video. So the processor is assembled here from its
parts, from any checkpoint directory, and registered with `AutoProcessor` (without the registration `AutoProcessor`
silently returns only the tokenizer for our saved tiny models).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from transformers import AutoProcessor, AutoTokenizer, Qwen2_5_VLConfig, Qwen2_5_VLProcessor, Qwen2VLConfig
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

# Qwen2-VL's chat template (as published with the checkpoints): each image becomes
# <|vision_start|><|image_pad|><|vision_end|>, expanded by the processor to one pad per merged patch.
QWEN_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class QwenVLImageTextProcessor(Qwen2_5_VLProcessor):
    """`Qwen2_5_VLProcessor` without the video sub-processor (the token layout is shared by Qwen2-VL)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **kwargs)


for _config in (Qwen2_5_VLConfig, Qwen2VLConfig):
    AutoProcessor.register(_config, QwenVLImageTextProcessor, exist_ok=True)


def default_image_processor_class():
    """The native processor where the extension is built (the one hardware/extension gate decides), else Pillow's."""
    from evoquality import _backend

    if _backend.native_extension() is not None:
        from evoquality.io.processor import NativeQwen2VLImageProcessor

        return NativeQwen2VLImageProcessor
    return Qwen2VLImageProcessorPil


def _read_chat_template(path: Path, tokenizer) -> Optional[str]:
    for name in ("chat_template.jinja", "chat_template.json"):
        file = path / name
        if file.is_file():
            text = file.read_text()
            return json.loads(text)["chat_template"] if name.endswith(".json") else text
    return getattr(tokenizer, "chat_template", None)


def load_processor(path: str | Path, *, image_processor=None) -> QwenVLImageTextProcessor:
    """Assemble the processor of the checkpoint in `path` (tokenizer, image processor config, chat template).

    `image_processor` replaces the checkpoint's. By default it is EvoQuality's native image processor (bit-identical
    to transformers' Pillow backend, several times faster) when the extension is built, else that Pillow backend;
    either is configured from the checkpoint's image-processor settings. Labelling, training and evaluation all
    load their processor here, so they all preprocess through the native pipeline.
    """
    path = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if image_processor is None:
        image_processor = default_image_processor_class().from_pretrained(path, local_files_only=True)
    chat_template = _read_chat_template(path, tokenizer) or QWEN_VL_CHAT_TEMPLATE
    return QwenVLImageTextProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template)
