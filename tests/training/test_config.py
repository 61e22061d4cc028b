import argparse
import json

import pytest

from evoquality.training.config import TrainConfig, add_config_arguments, config_from_args, make_config


def test_defaults_are_the_papers():
    c = TrainConfig()
    assert (c.num_generations, c.beta, c.epsilon, c.learning_rate, c.lr_scheduler_type, c.temperature, c.loss_type) \
        == (32, 0.05, 0.2, 3e-7, "linear", 1.0, "grpo")
    assert (c.gamma, c.adv_eps, c.scale_rewards) == (1e-6, 1e-4, "group")
    # Eq. 5-6: the plain k3 KL; TRL 1.16 would multiply it by the importance ratio.
    assert c.use_bias_correction_kl is False


def test_kl_estimator_default_is_the_papers_and_trls_is_an_option(tmp_path):
    from trl import GRPOConfig

    assert GRPOConfig(output_dir=str(tmp_path), use_cpu=True).use_bias_correction_kl is True  # what TRL turns on
    assert make_config(None, {"use_cpu": True}).to_grpo_config(tmp_path).use_bias_correction_kl is False
    on = make_config(None, {"use_bias_correction_kl": "true", "use_cpu": True})
    assert on.to_grpo_config(tmp_path).use_bias_correction_kl is True


def test_every_trl_default_that_differs_from_the_paper_is_set(tmp_path):
    g = make_config(None, {"use_cpu": True}).to_grpo_config(tmp_path)
    assert (g.loss_type, g.beta, g.use_bias_correction_kl, g.learning_rate, g.lr_scheduler_type, g.epsilon) == \
        ("grpo", 0.05, False, 3e-7, "linear", 0.2)
    assert (g.scale_rewards, g.num_iterations, g.top_k, g.repetition_penalty) == ("group", 1, 0, 1.0)


def test_vllm_importance_sampling_is_exposed(tmp_path):
    c = make_config(None, {"use_cpu": True, "vllm_importance_sampling_correction": False,
                           "vllm_importance_sampling_mode": "token_truncate",
                           "vllm_importance_sampling_clip_max": 2.0})
    g = c.to_grpo_config(tmp_path)
    assert (g.vllm_importance_sampling_correction, g.vllm_importance_sampling_mode,
            g.vllm_importance_sampling_clip_max) == (False, "token_truncate", 2.0)
    assert make_config(None, {"use_cpu": True}).to_grpo_config(tmp_path).vllm_importance_sampling_correction is True


@pytest.mark.parametrize("key, value, message", [
    ("scale_rewards", "none", "grpo_overrides must not set ['scale_rewards']"),
    ("beta", 0.0, "grpo_overrides must not set ['beta']"),
    ("use_bias_correction_kl", True, "use the field"),
    ("steps_per_generation", 2, "grpo_overrides must not set ['steps_per_generation']"),
    ("reward_weights", [1.0], "the fidelity reward is the only reward"),
])
def test_grpo_overrides_cannot_shadow_what_the_config_decides(tmp_path, key, value, message):
    cfg = make_config(None, {"use_cpu": True, "grpo_overrides": {key: value}})
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        cfg.to_grpo_config(tmp_path)


def test_precedence_defaults_file_flags(tmp_path):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("beta: 0.1\nnum_generations: 8\ngrpo_overrides: {log_level: info}\n")
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    args = parser.parse_args(["--config", str(yaml_file), "--num-generations", "16", "--use-vllm", "true"])
    c = config_from_args(args)
    assert (c.beta, c.num_generations, c.use_vllm, c.epsilon) == (0.1, 16, True, 0.2)
    assert c.grpo_overrides == {"log_level": "info"}
    json_file = tmp_path / "c.json"
    json_file.write_text(json.dumps({"learning_rate": 1e-6}))
    assert make_config(json_file, {"seed": "3"}).learning_rate == 1e-6
    assert make_config(json_file, {"seed": "3"}, base={"seed": 9, "beta": 0.2}).seed == 3
    assert make_config(None, None, base={"beta": 0.2}).beta == 0.2


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"bogus": 1}, "unknown training config keys ['bogus']"),
        ({"num_generations": "x"}, "config key 'num_generations' must be int"),
        ({"num_generations": 1}, "num_generations must be >= 2"),
        ({"images_per_step": 3}, "images_per_step must be an even number"),
        ({"loss_type": "ppo"}, "loss_type must be one of"),
        ({"use_vllm": "maybe"}, "config key 'use_vllm' must be a boolean"),
        ({"beta": -1}, "beta must be finite and >= 0"),
        ({"gamma": 0}, "gamma must be finite and > 0"),
        ({"gamma": float("inf")}, "gamma must be finite and > 0"),
        ({"unparsed_reward": 1.5}, "unparsed_reward must be unset or in [0, 1]"),
        ({"unparsed_reward": -0.1}, "unparsed_reward must be unset or in [0, 1]"),
        ({"scale_rewards": "mean"}, "scale_rewards must be one of"),
        ({"vllm_importance_sampling_mode": "x"}, "vllm_importance_sampling_mode must be one of"),
    ],
)
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        make_config(None, overrides)


def test_bad_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        make_config(tmp_path / "missing.yaml")
    bad = tmp_path / "c.toml"
    bad.write_text("")
    with pytest.raises(ValueError, match="must end in .yaml, .yml or .json"):
        make_config(bad)
    lst = tmp_path / "c.json"
    lst.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a mapping"):
        make_config(lst)


def test_to_grpo_config_batching_and_paper_loss(tmp_path):
    c = make_config(None, {"num_generations": 4, "images_per_step": 6, "per_device_train_batch_size": 4,
                           "use_cpu": True, "bf16": False})
    g = c.to_grpo_config(tmp_path, num_processes=2)
    # 6 images x 4 rollouts = 24 = 4 per device x 2 processes x 3 micro-batches: one optimizer step per batch.
    # (GRPOConfig multiplies by the world size of *this* process, 1 here, for its own generation_batch_size.)
    assert (g.steps_per_generation, g.gradient_accumulation_steps) == (3, 3)
    assert c.rollouts_per_step() == 4 * 2 * 3 == 24
    assert g.gradient_checkpointing is True
    assert (g.loss_type, g.beta, g.num_generations, g.remove_unused_columns) == ("grpo", 0.05, 4, False)
    with pytest.raises(ValueError, match="must be divisible by per_device_train_batch_size"):
        c.to_grpo_config(tmp_path, num_processes=5)
    with pytest.raises(ValueError, match="grpo_overrides has keys that GRPOConfig does not know"):
        make_config(None, {"grpo_overrides": {"nope": 1}}).to_grpo_config(tmp_path)


def test_cli_help_renders():
    from evoquality.commands import evolve, train

    for module in (train, evolve):
        parser = argparse.ArgumentParser()
        module.add_arguments(parser)
        text = parser.format_help()  # argparse %-formats every help string
        assert "--num-generations" in text and "30% time" in text
