"""Fails loudly when TRL changes a private seam that FidelityGRPOTrainer overrides or relies on.

If this fails after a TRL upgrade: read the new GRPOTrainer, adapt `evoquality/training/trainer.py`, then update the
pinned signatures and source facts here (and the pin in pyproject.toml).
"""

import inspect

import trl
from trl import GRPOTrainer

from evoquality.training.trainer import FidelityGRPOTrainer

PINNED_MINOR = "1.16"

# Parameter names (and defaults) of every TRL method we override.
OVERRIDDEN = {
    "_get_train_sampler": "(self, dataset=None)",
    "_calculate_rewards": "(self, inputs, prompts, completions, completion_ids_list)",
    "_generate_and_score_completions": "(self, inputs)",
    "_tokenize_prompts": "(self, prompts)",
    "_generate_single_turn": "(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False)",
    "_prepare_inputs": "(self, generation_batch)",
    "training_step": "(self, model, inputs, num_items_in_batch)",
    "_load_from_checkpoint": "(self, resume_from_checkpoint, model=None)",
}

# Facts about TRL's code that the overrides depend on (see trainer.py for why each matters).
SOURCE_FACTS = {
    "_generate_and_score_completions": [
        "self._calculate_rewards(inputs, prompts, completions, completion_ids_list)",  # our global reward hook
        '"advantages": advantages,',  # the key whose value we replace
        'self._logs["advantages"].extend(all_process_advantages.tolist())',  # the log entries we correct
        "self.processing_class(images=images, text=prompts_text",  # the forward-batch preprocessing we cache
        'images = [example.get("images") for example in inputs]',  # rows' images (our paths) go on as they are
    ],
    # The prompts, images in their content, are deep-copied every generation batch: path rows copy for free, the
    # store's decoded images (vLLM) share themselves (data._SharedImage).
    "_generate": ["prompts = copy.deepcopy(prompts)"],
    "_tokenize_prompts": ['prompt_images.append(part["image"])'],  # generation's images: the rows', untouched
    "__init__": [
        "create_model_from_path(get_config_model_id(self.model.config), **model_init_kwargs)",  # ref from _name_or_path
        'self.add_callback(SyncRefModelCallback',
    ],
    "get_train_dataloader": ["sampler_fn=self._get_train_sampler"],
    "_generate_single_turn": ["self.vllm_generation.sync_weights()"],
    "_prepare_inputs": ["self._generate_and_score_completions(generation_batch)"],
}


def _shape(fn) -> str:
    sig = inspect.signature(fn)
    params = [
        p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}" for p in sig.parameters.values()
    ]
    return "(" + ", ".join(params) + ")"


def test_trl_minor_version_is_the_pinned_one():
    assert ".".join(trl.__version__.split(".")[:2]) == PINNED_MINOR, (
        f"TRL {trl.__version__} is installed but the overrides were written against {PINNED_MINOR}.x"
    )


def test_overridden_signatures_unchanged():
    for name, expected in OVERRIDDEN.items():
        assert _shape(getattr(GRPOTrainer, name)) == expected, f"GRPOTrainer.{name} changed signature"
        assert _shape(getattr(FidelityGRPOTrainer, name)) == expected, f"our {name} drifted from TRL's"


def test_source_facts_hold():
    for method, snippets in SOURCE_FACTS.items():
        source = inspect.getsource(getattr(GRPOTrainer, method))
        for snippet in snippets:
            assert snippet in source, f"GRPOTrainer.{method} no longer contains {snippet!r}"


def test_prepare_multimodal_messages_puts_the_rows_images_in_unchanged():
    """TRL 1.16 (`data_utils.prepare_multimodal_messages`) places each row's image into its content block as it is:
    a path stays a path for the processor to read."""
    from trl.data_utils import prepare_multimodal_messages

    out = prepare_multimodal_messages([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "q"}]}],
                                      images=["/some/image.png"])
    assert out[0]["content"][0] == {"type": "image", "image": "/some/image.png"}


def test_callback_hooks_exist():
    from transformers import TrainerCallback

    # The optimizer phase is timed between these two events.
    assert hasattr(TrainerCallback, "on_pre_optimizer_step") and hasattr(TrainerCallback, "on_optimizer_step")
