"""`accelerate launch --num_processes 2` on CPU (gloo) computes the same global rewards and advantages as one
process on the same batch, and each process trains on its own slice of them.

The shipped FSDP2 and ZeRO-3 configs train for real on 2 CPU processes: the policy is sharded (not DDP in disguise),
rewards, advantages and losses equal DDP's bit for bit, the final weights equal DDP's (FSDP2) or agree on the update
(ZeRO-3), a run killed after a checkpoint resumes and completes, and the final model loads with `from_pretrained`
under the shipped state-dict settings. A CPU FSDP launch without the test's shim is refused, never run as DDP."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
SCRIPT = HERE / "_dist_rewards.py"


def _run(cmd, out: Path):
    env = dict(os.environ, PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))]


@pytest.mark.slow
def test_two_processes_match_one(tiny_model_dir, labelled_pool, tmp_path):
    # The answers are fixed by the script (not sampled), so the raw tiny model serves.
    _, records = labelled_pool
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(records))
    one_dir, two_dir = tmp_path / "one", tmp_path / "two"
    one_dir.mkdir(), two_dir.mkdir()
    (one,) = _run([sys.executable, str(SCRIPT), str(tiny_model_dir), str(labels), str(one_dir)], one_dir)
    # accelerate's --cpu launcher needs MPI for several processes; its torchrun launcher (--multi_gpu) starts them
    # fine without CUDA, and the script's use_cpu=True makes them a gloo MULTI_CPU group.
    accelerate = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                  "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                  "--main_process_port", "29517"]
    two = _run(accelerate + [str(SCRIPT), str(tiny_model_dir), str(labels), str(two_dir)], two_dir)
    assert one["world"] == 1 and [r["world"] for r in two] == [2, 2]
    for rank in two:  # every process saw the whole global batch, identical to the single process's
        assert rank["image_ids"] == one["image_ids"]
        assert rank["scores"] == one["scores"]
        assert rank["rewards"] == one["rewards"]  # same kernel, same inputs: bit-identical
        assert rank["advantages"] == one["advantages"]
        assert rank["loss_finite"]
    assert any(v is None for row in one["scores"] for v in row)  # some answers did not parse ...
    assert any(v is not None for row in one["rewards"] for v in row)  # ... and the others were rewarded
    flat = [a for row in one["advantages"] for a in row]
    # The single process keeps the whole batch; the two processes split it in order, half each.
    assert one["local_advantages"] == flat
    assert two[0]["local_advantages"] + two[1]["local_advantages"] == flat


# ------------------------------------------------------------------------------------------------ FSDP2 and ZeRO-3
# The shipped configs, launched on 2 CPU processes with only the process count and precision changed, train the toy
# base model for 3 sampled steps (`_dist_engines.py`); FSDP2 and ZeRO-3 are killed right after checkpoint-2 and
# resumed. One launch (pair) per engine serves every assertion below.
ENGINES = HERE / "_dist_engines.py"
CONFIGS = Path(__file__).parents[2] / "python" / "evoquality" / "training" / "configs"
TOY_MODEL = Path(__file__).parents[2] / "python" / "evoquality" / "toy" / "base_model_weights"
SHIPPED = {"ddp": "ddp.yaml", "fsdp2": "fsdp2.yaml", "zero3": "zero3.yaml"}
KILL_AFTER = 2
# ZeRO-3 sums gradients in its own order (bucketed reduce-scatter); Adam divides every element by its own RMS, so
# where a gradient is near zero a last-bit difference of the fp32 sum shows in its update. Measured: 7.5e-7 at most
# against updates of 2.0e-4 (lr 1e-4, 3 steps), 0.4 %. The engines must agree on the update to 1 %.
ZERO3_UPDATE_RTOL = 0.01


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(engine: str, root: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    import yaml

    config = yaml.safe_load((CONFIGS / SHIPPED[engine]).read_text())
    config.update(num_processes=2, mixed_precision="no", main_process_port=_free_port())
    config_file = out.with_suffix(".yaml")
    config_file.write_text(yaml.safe_dump(config))
    out.mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")
    if engine == "zero3":
        env["DS_ACCELERATOR"] = "cpu"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file), str(ENGINES),
           engine, str(TOY_MODEL), str(root / "labels.jsonl"), str(out), *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def _why(proc: subprocess.CompletedProcess) -> str:
    """The launched processes' own tracebacks (the launcher's summary after them names no cause)."""
    lines = proc.stderr.splitlines()
    ranks = [line for line in lines if line.startswith("[rank")]
    return "\n".join((ranks or lines)[-60:])


def _steps(out: Path) -> dict[int, list[dict]]:
    """Per rank, its step records in order."""
    return {int(p.stem[len("steps-rank"):]): [json.loads(line) for line in p.read_text().splitlines()]
            for p in sorted(out.glob("steps-rank*.jsonl"))}


def _losses(out: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "train" / "metrics.jsonl").read_text().splitlines()]
    return {row["step"]: row["loss"] for row in rows if "loss" in row}


@pytest.fixture(scope="module")
def engine_root(tmp_path_factory):
    from conftest import write_images

    root = tmp_path_factory.mktemp("engines")
    paths = write_images(root / "pool", 8, seed=3)
    spec = [(0, 1, 1.0), (2, 3, 0.0), (4, 5, 0.5), (6, 7, 1.0), (1, 2, 1.0), (5, 6, 0.0)]
    (root / "labels.jsonl").write_text("".join(
        json.dumps({"image_i": paths[i], "image_j": paths[j], "p_star": p, "votes_i": 1, "votes_j": 0, "invalid": 0,
                    "flagged": False}) + "\n" for i, j, p in spec))
    return root


@pytest.fixture(scope="module")
def ddp_run(engine_root):
    out = engine_root / "ddp"
    proc = _launch("ddp", engine_root, out)
    assert proc.returncode == 0, _why(proc)
    return out


@pytest.fixture(scope="module", params=["fsdp2", "zero3"])
def sharded_run(request, engine_root):
    """(engine, out dir): killed after checkpoint-2, then the same command again to the end."""
    engine = request.param
    if engine == "zero3":
        pytest.importorskip("deepspeed")
    out = engine_root / engine
    killed = _launch(engine, engine_root, out, "--kill-after", str(KILL_AFTER))
    assert "Signal 9 (SIGKILL) received" in killed.stderr, _why(killed)
    assert not (out / "train" / "model").exists() and (out / "train" / f"checkpoint-{KILL_AFTER}").is_dir()
    resumed = _launch(engine, engine_root, out)
    assert resumed.returncode == 0, _why(resumed)
    return engine, out


@pytest.mark.slow
def test_engine_really_shards(sharded_run, ddp_run):
    engine, out = sharded_run
    facts = [json.loads((out / f"engine-rank{r}.json").read_text()) for r in (0, 1)]
    ddp = [json.loads((ddp_run / f"engine-rank{r}.json").read_text()) for r in (0, 1)]
    assert all(d["wrapper"] == "DistributedDataParallel" and d["local_numel"] == d["full_numel"] for d in ddp)
    full = ddp[0]["full_numel"]
    for f in facts:
        assert f["num_processes"] == 2 and f["full_numel"] == full
        if engine == "fsdp2":
            assert f["distributed_type"] == "DistributedType.FSDP"
            # Per-layer wrapping of the shipped config (decoder and vision blocks) plus the root module.
            assert f["fsdp_modules"].count("FSDPQwen2_5_VLDecoderLayer") == 2
            assert f["fsdp_modules"].count("FSDPQwen2_5_VLVisionBlock") == 2
            assert f["dtensor_params"] == f["params"] and f["plain_params"] == []
        else:
            assert f["distributed_type"] == "DistributedType.DEEPSPEED" and f["wrapper"] == "DeepSpeedEngine"
            assert f["zero_stage"] == 3 and f["ds_params"] == f["params"]
            assert f["ref_wrapper"] == "DeepSpeedEngine"  # the KL reference is partitioned too (beta > 0)
        assert f["local_numel"] <= full // 2 + f["params"]  # half each (ZeRO-3 pads a partition by < 1 per rank)
    assert sum(f["local_numel"] for f in facts) >= full


@pytest.mark.slow
def test_engine_rewards_and_advantages_equal_ddp(sharded_run, ddp_run):
    _, out = sharded_run
    ref, got = _steps(ddp_run), _steps(out)
    for rank in (0, 1):
        assert [r["step"] for r in ref[rank]] == [1, 2, 3]
        # The killed launch recorded steps 1-2, the resumed one step 3.
        assert [r["step"] for r in got[rank]] == [1, 2, 3]
        for a, b in zip(ref[rank], got[rank]):
            assert b["image_ids"] == a["image_ids"]
            assert b["completion_ids"] == a["completion_ids"]
            assert b["scores"] == a["scores"]
            assert b["rewards"] == a["rewards"]  # bit-equal: same kernel on the same gathered scores
            assert b["advantages"] == a["advantages"]
    assert any(v is not None for rec in ref[0] for row in rec["rewards"] for v in row)  # the toy model's answers parse
    # ... and so is the loss TRL computed from them (the killed launch logged steps 1-2, the resumed one step 3).
    assert _losses(out) == _losses(ddp_run) and sorted(_losses(ddp_run)) == [1, 2, 3]


@pytest.mark.slow
def test_engine_resumes_after_kill(sharded_run):
    engine, out = sharded_run
    summary = json.loads((out / "train" / "train_summary.json").read_text())
    assert summary["resumed_from"] == str(out / "train" / f"checkpoint-{KILL_AFTER}")
    assert summary["global_step"] == 3
    checkpoint = out / "train" / f"checkpoint-{KILL_AFTER}"
    if engine == "fsdp2":
        assert (checkpoint / "pytorch_model_fsdp_0").is_dir()  # SHARDED_STATE_DICT: the checkpoint stays sharded
    else:
        assert (checkpoint / f"global_step{KILL_AFTER}").is_dir()  # DeepSpeed's own partitioned checkpoint


@pytest.mark.slow
def test_engine_final_model_loads_and_matches_ddp(sharded_run, ddp_run):
    import torch
    from safetensors.torch import load_file
    from transformers import Qwen2_5_VLForConditionalGeneration

    engine, out = sharded_run
    final = out / "train" / "model"
    assert sorted(p.name for p in final.iterdir()) == sorted(p.name for p in (ddp_run / "train" / "model").iterdir())
    _, info = Qwen2_5_VLForConditionalGeneration.from_pretrained(final, output_loading_info=True)
    assert not any(info.values()), info  # no missing, unexpected or mismatched tensor
    got = load_file(final / "model.safetensors")
    want = load_file(ddp_run / "train" / "model" / "model.safetensors")
    start = load_file(TOY_MODEL / "model.safetensors")
    assert got.keys() == want.keys() == start.keys()
    moved = max((want[k] - start[k]).abs().max().item() for k in want)
    assert moved > 1e-4  # the three steps trained (lr 1e-4): the comparison below is not vacuous
    if engine == "fsdp2":
        # Gloo's all-reduce and reduce-scatter sum two ranks' fp32 gradients alike: the same weights, bit for bit.
        assert [k for k in want if not torch.equal(got[k], want[k])] == []
    else:
        diff = max((got[k] - want[k]).abs().max().item() for k in want)
        assert diff <= ZERO3_UPDATE_RTOL * moved, (diff, moved)


@pytest.mark.slow
def test_fsdp_on_cpu_without_the_shim_is_refused(engine_root):
    out = engine_root / "fsdp2-no-shim"
    proc = _launch("fsdp2", engine_root, out, "--no-shim")
    assert proc.returncode != 0
    assert "the accelerate config asks for FSDP but this run would be MULTI_CPU" in proc.stderr
    assert not list(out.glob("steps-rank*")) and not (out / "train" / "metrics.jsonl").exists()  # before step 1


def _fake_accelerator(distributed_type: str, num_processes: int = 1, gather_16bit: bool = True):
    from types import SimpleNamespace

    import torch
    from accelerate.utils import DistributedType

    zero = {"stage": 3, "stage3_gather_16bit_weights_on_model_save": gather_16bit}
    cpu = torch.device("cpu")
    state = SimpleNamespace(num_processes=num_processes, device=cpu,
                            deepspeed_plugin=SimpleNamespace(deepspeed_config={"zero_optimization": zero}))
    return SimpleNamespace(distributed_type=DistributedType[distributed_type], device=cpu, state=state)


@pytest.mark.parametrize("requested, running, world, gather_16bit, error", [
    ("DEEPSPEED", "MULTI_CPU", 2, True, "asks for DEEPSPEED but this run would be MULTI_CPU on 'cpu': DeepSpeed needs "
                                        "use_cpu false"),
    ("FSDP", "MULTI_CPU", 2, True, "asks for FSDP but this run would be MULTI_CPU on 'cpu': accelerate runs FSDP on "
                                   "GPUs only"),
    ("DEEPSPEED", "DEEPSPEED", 2, False, "ZeRO-3 without zero3_save_16bit_model: true"),
    ("DEEPSPEED", "DEEPSPEED", 1, True, "launched as 2 processes but accelerate runs 1"),
    ("DEEPSPEED", "DEEPSPEED", 2, True, None),
])
def test_a_launch_accelerate_would_run_otherwise_is_refused(monkeypatch, requested, running, world, gather_16bit,
                                                            error):
    from evoquality.training.stage import _check_engine

    monkeypatch.setenv(f"ACCELERATE_USE_{requested}", "true")
    monkeypatch.setenv("WORLD_SIZE", "2")
    accelerator = _fake_accelerator(running, num_processes=world, gather_16bit=gather_16bit)
    if error is None:
        _check_engine(accelerator)
    else:
        with pytest.raises(RuntimeError, match=re.escape(error)):
            _check_engine(accelerator)
