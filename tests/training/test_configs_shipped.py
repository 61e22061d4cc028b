"""The shipped accelerate configs load with accelerate's own reader and describe the engines the README promises."""

from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file

import evoquality.training

CONFIGS = Path(evoquality.training.__file__).parent / "configs"


@pytest.mark.parametrize(
    "name, engine, processes, machines",
    [("ddp", "MULTI_GPU", 8, 1), ("zero3", "DEEPSPEED", 8, 1), ("fsdp2", "FSDP", 8, 1),
     ("multinode_zero3", "DEEPSPEED", 16, 2)],
)
def test_shipped_config(name, engine, processes, machines):
    cfg = load_config_from_file(str(CONFIGS / f"{name}.yaml"))
    assert cfg.distributed_type.value == engine
    assert (cfg.num_processes, cfg.num_machines, cfg.mixed_precision) == (processes, machines, "bf16")
    if engine == "DEEPSPEED":
        assert cfg.deepspeed_config["zero_stage"] == 3
    if engine == "FSDP":
        assert cfg.fsdp_config["fsdp_version"] == 2
        # The wrapped layer classes must exist in the installed transformers.
        import transformers.models.qwen2_5_vl.modeling_qwen2_5_vl as qwen

        for cls in cfg.fsdp_config["fsdp_transformer_layer_cls_to_wrap"].split(","):
            assert hasattr(qwen, cls), cls
    assert name + ".yaml" in (CONFIGS / "README.md").read_text()
