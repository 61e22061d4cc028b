"""A train stage's checkpoints (TRL's Trainer.save_model -> processing_class.save_pretrained) carry the processor
files of the checkpoint the stage started from, unchanged, and load with stock transformers classes."""

import json

import numpy as np
import pytest
from PIL import Image

from evoquality.processing import load_processor, read_processor_files
from evoquality.training.config import make_config
from evoquality.training.stage import train_stage

from test_processing import needs_torchvision, write_hub_layout_checkpoint  # noqa: E402  (tests/ is on sys.path)


@pytest.fixture(scope="module")
def one_step(tiny_model_dir, tmp_path_factory):
    """A 1-step stage, with a checkpoint at step 1, from the tiny model in a published checkpoint's file layout
    (not the one we write ourselves): (source, checkpoint-1, final model)."""
    root = tmp_path_factory.mktemp("one-step")
    source = write_hub_layout_checkpoint(tiny_model_dir, root / "source")
    rng = np.random.default_rng(0)
    paths = []
    for k in range(4):
        paths.append(root / f"im{k}.png")
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(paths[-1])
    labels = root / "labels.jsonl"
    labels.write_text("".join(json.dumps({"image_i": str(paths[i]), "image_j": str(paths[j]), "p_star": 1.0,
                                          "votes_i": 1, "votes_j": 0, "invalid": 0, "flagged": False}) + "\n"
                              for i, j in ((0, 1), (2, 3))))
    config = make_config(None, dict(num_generations=2, images_per_step=2, per_device_train_batch_size=4,
                                    max_completion_length=4, use_cpu=True, bf16=False,
                                    gradient_checkpointing=False, save_steps=1, max_steps=1, seed=0))
    final = train_stage(source, labels, root / "train", config)
    return source, root / "train" / "checkpoint-1", final


def test_stage_checkpoints_keep_the_source_processor_files(one_step):
    source, checkpoint, final = one_step
    files = read_processor_files(source)
    assert set(files) == {"preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.json"}
    for saved in (checkpoint, final):
        assert read_processor_files(saved) == files, saved.name  # same file set, same bytes
    # The evolved model starts the next round: our runtime processor reads its files as it read the source's.
    assert load_processor(final).to_dict() == load_processor(source).to_dict()


@needs_torchvision
def test_stock_autoprocessor_loads_the_evolved_model(one_step):
    from transformers import AutoProcessor, Qwen2_5_VLProcessor

    assert type(AutoProcessor.from_pretrained(one_step[2])) is Qwen2_5_VLProcessor
