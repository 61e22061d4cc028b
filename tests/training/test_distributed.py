"""`accelerate launch --num_processes 2` on CPU (gloo) computes the same global rewards and advantages as one
process on the same batch, and each process trains on its own slice of them."""

import json
import os
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
