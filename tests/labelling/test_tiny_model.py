"""Stage 1 on the tiny Qwen2.5-VL on CPU: the real transformers backend, a SIGKILL mid-run and its resume, the CLI,
and two processes under `accelerate launch` (gloo)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

from evoquality.labelling import read_labels
from evoquality.labelling.config import LabelConfig
from evoquality.labelling.dist import Dist
from evoquality.labelling.runner import run_labelling
from evoquality.labelling.store import RoundDir

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ARGS = dict(pairs=14, votes=4, batch_items=1, max_new_tokens=12, save_answers=True, progress=False)


@pytest.fixture
def pool(tmp_path):
    folder = tmp_path / "pool"
    folder.mkdir()
    for k in range(6):
        Image.effect_mandelbrot((40 + 6 * k, 36), (-2 + 0.1 * k, -1.2, 1, 1.2), 30 + 10 * k).convert("RGB").save(
            folder / f"m{k}.png")
    return folder


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def _cli(model, pool, out, **kw):
    args = {**ARGS, **kw}
    cmd = ["label", "--model", str(model), "--images", str(pool), "--out", str(out)]
    for k, v in args.items():
        flag = "--" + k.replace("_", "-")
        cmd += [flag] if v is True else ["--no-" + k.replace("_", "-")] if v is False else [flag, str(v)]
    return cmd


def _vote_records(round_dir):
    return {k: (r["orders"], r["answers"], r["texts"]) for k, r in RoundDir(round_dir).read_records().items()}


def test_sigkill_midway_then_resume_equals_uninterrupted(tiny_model_dir, pool, tmp_path):
    full = run_labelling(LabelConfig(model=str(tiny_model_dir), images=str(pool), out=str(tmp_path / "full"), **ARGS),
                         dist=Dist())
    assert full["pairs_labelled"] == 14 and full["votes_total"] == 56

    cut = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-m", "evoquality", *_cli(tiny_model_dir, pool, cut)], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    shard = cut / "votes" / "rank-00000.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if shard.exists() and shard.read_bytes().count(b"\n") >= 2:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    n_before = len(RoundDir(cut).read_records())
    assert 2 <= n_before < 14 and not (cut / "labels.jsonl").exists()

    resumed = run_labelling(LabelConfig(model=str(tiny_model_dir), images=str(pool), out=str(cut), **ARGS),
                            dist=Dist())
    assert read_labels(cut) == read_labels(tmp_path / "full")
    assert _vote_records(cut) == _vote_records(tmp_path / "full")  # same orders, answers and raw texts
    assert resumed["throughput"]["sessions"] == 1  # the killed session never logged; the resume did the rest
    runs = RoundDir(cut).read_runs()
    assert runs[-1]["items"] == 14 - n_before


def test_cli_refuses_a_mixed_configuration_and_a_non_vlm(tiny_model_dir, pool, tmp_path, capsys):
    from evoquality.cli import main

    out = tmp_path / "r"
    assert main(_cli(tiny_model_dir, pool, out, pairs=2)) == 0
    assert json.loads(capsys.readouterr().out)["pairs_labelled"] == 2
    assert main(_cli(tiny_model_dir, pool, out, pairs=3)) == 2
    assert "pairs: stored 2, requested 3" in capsys.readouterr().err
    not_vlm = tmp_path / "not_vlm"
    not_vlm.mkdir()
    assert main(_cli(not_vlm, pool, tmp_path / "r2")) == 2
    assert "has no config.json" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("accelerate", path=os.path.dirname(sys.executable)) is None,
                    reason="accelerate's launcher is not installed next to this Python")
def test_two_processes_match_one(tiny_model_dir, pool, tmp_path):
    one = tmp_path / "one"
    run_labelling(LabelConfig(model=str(tiny_model_dir), images=str(pool), out=str(one), **ARGS), dist=Dist())
    two = tmp_path / "two"
    launcher = os.path.join(os.path.dirname(sys.executable), "accelerate")
    cmd = [launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision",
           "no", "--dynamo_backend", "no", "--main_process_port", "0", "-m", "evoquality",
           *_cli(tiny_model_dir, pool, two)]
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout[res.stdout.index("{"):])
    assert summary["throughput"]["processes"] == 2
    assert sorted(p.name for p in (two / "votes").iterdir()) == ["rank-00000.jsonl", "rank-00001.jsonl"]
    # Each process wrote about half the batches, and together exactly the single-process labels.
    per_rank = [r["items"] for r in RoundDir(two).read_runs()]
    assert sorted(per_rank) == [7, 7]
    assert read_labels(two) == read_labels(one)
    assert _vote_records(two) == _vote_records(one)


def test_random_order_design_with_odd_k(tiny_model_dir, pool, tmp_path):
    """Requests of one batch have different n (a coin per vote): the transformers backend groups them by n."""
    cfg = LabelConfig(model=str(tiny_model_dir), images=str(pool), out=str(tmp_path / "r"),
                      **{**ARGS, "pairs": 6, "votes": 5, "batch_items": 3, "order": "random"})
    summary = run_labelling(cfg, dist=Dist())
    assert summary["votes_total"] == 30
    records = RoundDir(tmp_path / "r").read_records()
    assert len({r["orders"].count("1") for r in records.values()}) > 1  # the per-order counts differ
    for r in records.values():
        assert len(r["orders"]) == len(r["answers"]) == len(r["texts"]) == 5
    assert all(r["votes_i"] + r["votes_j"] + r["invalid"] == 5 for r in read_labels(tmp_path / "r"))
