"""Checkpoint processor files: what we write names only stock transformers classes (so stock `AutoProcessor` and
vLLM load it), a processor loaded from a checkpoint writes that checkpoint's files back byte for byte, and our
torchvision-free runtime processor still loads all of them."""

import json
import shutil

import pytest

from evoquality.processing import PROCESSOR_FILES, RUNTIME_CLASS_NAME, load_processor
from evoquality.prompts import compare_messages
from evoquality.toy.base_model import SHIPPED

STOCK_LAYOUT = {"preprocessor_config.json", "video_preprocessor_config.json", "tokenizer.json",
                "tokenizer_config.json", "chat_template.jinja"}
MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors")


def processor_files(path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.name in PROCESSOR_FILES}


def torchvision_importable() -> bool:
    # PyPI's torchvision beside a CPU torch raises RuntimeError, not ImportError, on import.
    try:
        import torchvision  # noqa: F401
    except Exception:
        return False
    return True


needs_torchvision = pytest.mark.skipif(not torchvision_importable(),
                                       reason="stock Qwen2_5_VLProcessor needs an importable torchvision")


def _stock_names(path) -> None:
    """The files of a checkpoint we wrote name the stock classes, and nothing names our runtime class."""
    files = processor_files(path)
    assert set(files) == STOCK_LAYOUT
    image = json.loads(files["preprocessor_config.json"])
    video = json.loads(files["video_preprocessor_config.json"])
    tokenizer = json.loads(files["tokenizer_config.json"])
    assert (image["image_processor_type"], image["processor_class"]) == ("Qwen2VLImageProcessor", "Qwen2_5_VLProcessor")
    assert (video["video_processor_type"], video["processor_class"]) == ("Qwen2VLVideoProcessor", "Qwen2_5_VLProcessor")
    assert tokenizer["processor_class"] == "Qwen2_5_VLProcessor"
    # A published Qwen2.5-VL builds its video processor from the image processor's settings: the same values.
    for key in ("size", "patch_size", "merge_size", "temporal_patch_size", "image_mean", "image_std"):
        assert video[key] == image[key], key
    for p in path.iterdir():
        if p.suffix in (".json", ".jinja"):
            assert RUNTIME_CLASS_NAME not in p.read_text(), p.name


def test_tiny_model_writes_the_stock_layout(tiny_model_dir):
    _stock_names(tiny_model_dir)


def test_shipped_toy_model_has_the_stock_layout():
    _stock_names(SHIPPED)


@pytest.mark.parametrize("which", ["tiny", "toy"])
def test_our_loader_loads_the_stock_files(which, tiny_model_dir):
    path = tiny_model_dir if which == "tiny" else SHIPPED
    proc = load_processor(path)
    image = json.loads((path / "preprocessor_config.json").read_text())
    assert proc.image_processor.size["longest_edge"] == image["size"]["longest_edge"] == 112 * 112
    assert proc.chat_template == (path / "chat_template.jinja").read_text()
    text = proc.apply_chat_template(compare_messages(), add_generation_prompt=True, tokenize=False)
    assert text.count("<|image_pad|>") == 2
    assert proc.to_dict()["processor_class"] == "Qwen2_5_VLProcessor"


def write_hub_layout_checkpoint(tiny_model_dir, dest):
    """The tiny model with its processor files in the layout published Qwen2.5-VL checkpoints use (flat
    min/max_pixels, chat_template.json, no video processor file) — not the layout we write ourselves."""
    dest.mkdir()
    for name in (*MODEL_FILES, "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_model_dir / name, dest / name)
    hub_image = {"min_pixels": 784, "max_pixels": 12544, "patch_size": 14, "temporal_patch_size": 2,
                 "merge_size": 2, "image_mean": [0.48145466, 0.4578275, 0.40821073],
                 "image_std": [0.26862954, 0.26130258, 0.27577711], "image_processor_type": "Qwen2VLImageProcessor",
                 "processor_class": "Qwen2_5_VLProcessor"}
    (dest / "preprocessor_config.json").write_text(json.dumps(hub_image, indent=2))
    template = (tiny_model_dir / "chat_template.jinja").read_text()
    (dest / "chat_template.json").write_text(json.dumps({"chat_template": template}, indent=1))
    return dest


def test_save_writes_the_source_files_verbatim(tiny_model_dir, tmp_path):
    src = write_hub_layout_checkpoint(tiny_model_dir, tmp_path / "src")
    proc = load_processor(src)
    assert proc.chat_template == (tiny_model_dir / "chat_template.jinja").read_text()
    assert proc.image_processor.size["longest_edge"] == 12544
    out = tmp_path / "out"
    proc.save_pretrained(out)
    assert processor_files(out) == processor_files(src)
    assert set(processor_files(out)) == {"preprocessor_config.json", "tokenizer.json", "tokenizer_config.json",
                                         "chat_template.json"}
    # Saving again from a reloaded copy changes nothing either.
    load_processor(out).save_pretrained(tmp_path / "again")
    assert processor_files(tmp_path / "again") == processor_files(src)


def test_a_checkpoint_naming_the_runtime_class_is_saved_in_stock_form(tiny_model_dir, tmp_path):
    """Checkpoints written before the stock layout (one nested processor_config.json naming our runtime class)
    still load; saving one writes the stock layout, with the same settings and chat template."""
    old = tmp_path / "old"
    old.mkdir()
    for name in (*MODEL_FILES, "tokenizer.json", "chat_template.jinja"):
        shutil.copy(tiny_model_dir / name, old / name)
    image = json.loads((tiny_model_dir / "preprocessor_config.json").read_text())
    image.pop("processor_class")
    (old / "processor_config.json").write_text(json.dumps({"image_processor": image,
                                                           "processor_class": RUNTIME_CLASS_NAME}))
    tokenizer = json.loads((tiny_model_dir / "tokenizer_config.json").read_text())
    (old / "tokenizer_config.json").write_text(json.dumps({**tokenizer, "processor_class": RUNTIME_CLASS_NAME}))

    load_processor(old).save_pretrained(tmp_path / "new")
    _stock_names(tmp_path / "new")
    assert processor_files(tmp_path / "new") == processor_files(tiny_model_dir)


@needs_torchvision
def test_stock_autoprocessor_loads_our_checkpoint(tiny_model_dir):
    from transformers import AutoProcessor, Qwen2_5_VLProcessor

    proc = AutoProcessor.from_pretrained(tiny_model_dir)
    assert type(proc) is Qwen2_5_VLProcessor
    assert type(proc.video_processor).__name__ == "Qwen2VLVideoProcessor"
    assert proc.image_processor.size["longest_edge"] == 112 * 112
