"""The Qwen2.5-VL / Qwen2-VL processor EvoQuality runs with: tokenizer + image processor + chat template, no video.

The stock processors also construct a video processor, which needs torchvision; PyPI's torchvision does not import
beside the CPU build of torch ("operator torchvision::nms does not exist") and EvoQuality never feeds video. So at run
time the processor is assembled here from its parts, from any checkpoint directory. That class is a runtime choice only:
a checkpoint we write must load with the stock classes (`AutoProcessor` -> `Qwen2_5_VLProcessor`) and with vLLM. So
`save_pretrained` writes the processor files of the checkpoint the processor was loaded from, byte for byte, and a
processor built in memory (the tiny and toy models) writes the layout of a published Qwen2.5-VL checkpoint:
`preprocessor_config.json`, `video_preprocessor_config.json`, the tokenizer files and the chat template, all naming the
stock classes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Optional

from transformers import AutoTokenizer, Qwen2_5_VLProcessor
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


# Processor files of a checkpoint under transformers' names, current and legacy; model files are never among them.
PROCESSOR_FILES = (
    "processor_config.json", "preprocessor_config.json", "video_preprocessor_config.json",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.json",
    "merges.txt", "tokenizer.model", "chat_template.jinja", "chat_template.json",
)
EXTRA_CHAT_TEMPLATES_DIR = "additional_chat_templates"
# What earlier EvoQuality versions wrote into checkpoints; such files are never copied forward.
RUNTIME_CLASS_NAME = "QwenVLImageTextProcessor"
# How a tokenizer was loaded, which transformers keeps among its init kwargs and would save as settings.
_LOADING_KWARGS = ("is_local", "local_files_only")
# Settings the stock video processor shares with the image processor. A published Qwen2.5-VL builds its video
# processor from `preprocessor_config.json`; we write the same values into the video processor's own file.
_VIDEO_SHARED_KEYS = (
    "do_convert_rgb", "do_normalize", "do_rescale", "do_resize", "image_mean", "image_std", "merge_size",
    "patch_size", "resample", "rescale_factor", "size", "temporal_patch_size",
)


class QwenVLImageTextProcessor(Qwen2_5_VLProcessor):
    """`Qwen2_5_VLProcessor` without the video sub-processor (the token layout is shared by Qwen2-VL).

    `source_files` (relative path -> bytes) are the processor files of the checkpoint it was loaded from; they are
    what `save_pretrained` writes. `stock_class` names the class the saved files declare.
    """

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, *, source_files=None,
                 stock_class: str = "Qwen2_5_VLProcessor", **kwargs):
        super().__init__(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **kwargs)
        self.source_files = dict(source_files) if source_files else None
        self.stock_class = stock_class

    # transformers counts the images of a call with `make_flat_list_of_images`, which refuses paths and encoded
    # bytes; the native image processor takes those and decodes them once, in its batch (no Pillow image in between).
    # These two overrides count the leaves instead; everything else is transformers'.
    def validate_inputs(self, images=None, text=None, videos=None, audio=None, **kwargs):
        from evoquality.io.pipeline import flatten_images

        if images is None or text is None:
            return super().validate_inputs(images=images, text=text, videos=videos, audio=audio, **kwargs)
        texts = [text] if isinstance(text, str) else text
        if not (isinstance(texts, list) and all(isinstance(t, str) for t in texts)):
            raise ValueError("`text` must be a string or list of strings.")
        n_tokens, n_images = sum(t.count(self.image_token) for t in texts), len(flatten_images(images))
        if n_tokens != n_images:
            raise ValueError(f"The total number of {self.image_token} tokens in the prompts should be the same as the "
                             f"number of images passed. Found total {n_tokens} {self.image_token} tokens and "
                             f"{n_images} images.")
        if videos is not None or audio is not None:
            raise ValueError("this processor takes images and text only (no video or audio)")

    def _process_images(self, images, **kwargs):
        from evoquality.io.pipeline import flatten_images

        processed = self.image_processor(images, **kwargs)
        replacements = [self.replace_image_token(processed, image_idx=k, **kwargs)
                        for k in range(len(flatten_images(images)))]
        return processed, replacements

    def to_dict(self):
        out = super().to_dict()
        out["processor_class"] = self.stock_class  # what a stock loader must instantiate
        for key in ("source_files", "stock_class"):
            out.pop(key, None)
        return out

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs):
        """Write the source checkpoint's processor files verbatim, or (built in memory) a stock layout."""
        if push_to_hub:
            raise ValueError("push_to_hub is not supported: EvoQuality never talks to a model hub")
        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        if self.source_files is not None:
            for name, data in self.source_files.items():
                (out / name).parent.mkdir(parents=True, exist_ok=True)
                (out / name).write_bytes(data)
            return [str(out / name) for name in self.source_files]
        return self._save_stock_layout(out)

    def _save_stock_layout(self, out: Path) -> list[str]:
        tokenizer = copy.copy(self.tokenizer)  # shares the vocabulary; only what is saved about it differs
        tokenizer.init_kwargs = {k: v for k, v in tokenizer.init_kwargs.items() if k not in _LOADING_KWARGS}
        tokenizer._set_processor_class(self.stock_class)
        tokenizer.save_pretrained(out)
        image = self.image_processor.to_dict()
        # transformers' Pillow and torchvision backends share one saved type; the native one reports it too.
        image.update(image_processor_type="Qwen2VLImageProcessor", processor_class=self.stock_class)
        video = {key: image[key] for key in _VIDEO_SHARED_KEYS if key in image}
        video.update(video_processor_type="Qwen2VLVideoProcessor", processor_class=self.stock_class)
        written = [out / "preprocessor_config.json", out / "video_preprocessor_config.json"]
        for path, config in zip(written, (image, video)):
            path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        if isinstance(self.chat_template, str):
            (out / "chat_template.jinja").write_text(self.chat_template)
        # A stale nested config (an earlier save into the same folder) would shadow the files above.
        (out / "processor_config.json").unlink(missing_ok=True)
        return [str(p) for p in sorted(out.iterdir()) if p.name in PROCESSOR_FILES]


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


def read_processor_files(path: str | Path) -> Optional[dict[str, bytes]]:
    """The processor files of the checkpoint in `path` (relative path -> bytes), or None when they name our runtime
    class (checkpoints written by earlier EvoQuality versions), which stock loaders cannot instantiate."""
    path = Path(path)
    files = {name: (path / name).read_bytes() for name in PROCESSOR_FILES if (path / name).is_file()}
    extra = path / EXTRA_CHAT_TEMPLATES_DIR
    if extra.is_dir():
        files.update({f"{EXTRA_CHAT_TEMPLATES_DIR}/{f.name}": f.read_bytes() for f in sorted(extra.glob("*.jinja"))})
    for name, data in files.items():
        if name.endswith(".json") and RUNTIME_CLASS_NAME.encode() in data:
            return None
    return files


def _stock_class(path: Path) -> str:
    config = path / "config.json"
    model_type = json.loads(config.read_text()).get("model_type") if config.is_file() else None
    return "Qwen2VLProcessor" if model_type == "qwen2_vl" else "Qwen2_5_VLProcessor"


def load_processor(path: str | Path, *, image_processor=None) -> QwenVLImageTextProcessor:
    """Assemble the processor of the checkpoint in `path` (tokenizer, image processor config, chat template).

    `image_processor` replaces the checkpoint's. By default it is EvoQuality's native image processor (bit-identical
    to transformers' Pillow backend, several times faster) when the extension is built, else that Pillow backend;
    either is configured from the checkpoint's image-processor settings. Labelling, training and evaluation all
    load their processor here, so they all preprocess through the native pipeline.

    The processor keeps the checkpoint's processor files: every checkpoint saved from it (a training checkpoint, the
    evolved model) carries them unchanged. Files naming `QwenVLImageTextProcessor` are not kept; such a processor
    writes the stock layout instead.
    """
    path = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if image_processor is None:
        image_processor = default_image_processor_class().from_pretrained(path, local_files_only=True)
    chat_template = _read_chat_template(path, tokenizer) or QWEN_VL_CHAT_TEMPLATE
    return QwenVLImageTextProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template,
                                    source_files=read_processor_files(path), stock_class=_stock_class(path))
