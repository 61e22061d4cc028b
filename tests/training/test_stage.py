"""Stage 2 as a resumable unit: `train_stage` writes model/ atomically, skips a finished stage, and resumes from the
newest complete checkpoint with the policy weights loaded from that checkpoint (not the round start)."""

import json
import shutil

import pytest

import evoquality.modeling
from evoquality.training.config import make_config
from evoquality.training.stage import last_checkpoint, train_stage


def _config(**kw):
    base = dict(num_generations=2, images_per_step=2, per_device_train_batch_size=4, max_completion_length=4,
                use_cpu=True, bf16=False, gradient_checkpointing=False, save_steps=1, beta=0.05, seed=0)
    base.update(kw)
    return make_config(None, base)


def test_resume_loads_the_checkpoint_weights(tiny_model_dir, labelled_pool, tmp_path, monkeypatch):
    _, records = labelled_pool
    (tmp_path / "round").mkdir()
    (tmp_path / "round" / "labels.jsonl").write_text(
        "".join(json.dumps({**r, "votes_i": 1, "votes_j": 0, "invalid": 0, "flagged": False}) + "\n" for r in records))
    out = tmp_path / "train"
    final = train_stage(tiny_model_dir, tmp_path / "round", out, _config(max_steps=1))
    assert (final / "config.json").is_file() and not (out / "model.partial").exists()
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["pairs"] == 6 and summary["global_step"] == 1 and summary["resumed_from"] is None

    # A finished stage is not retrained.
    loads = []
    real = evoquality.modeling.load_policy
    monkeypatch.setattr(evoquality.modeling, "load_policy", lambda path, **kw: loads.append(path) or real(path, **kw))
    assert train_stage(tiny_model_dir, tmp_path / "round", out, _config(max_steps=1)) == final and loads == []

    # Pretend the run was killed after checkpoint-1 (and a half-written checkpoint-2): it resumes from 1.
    shutil.rmtree(final)
    (out / "checkpoint-2").mkdir()
    (out / "checkpoint-2" / "trainer_state.json").write_text('{"glob')
    assert last_checkpoint(out) == out / "checkpoint-1"
    shutil.rmtree(out / "checkpoint-2")
    train_stage(tiny_model_dir, tmp_path / "round", out, _config(max_steps=2))
    assert loads == [out / "checkpoint-1"]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["resumed_from"] == str(out / "checkpoint-1") and summary["global_step"] == 2
    assert summary["ref_model"] == str(tiny_model_dir)


def test_no_usable_pairs_is_an_error(tiny_model_dir, tmp_path):
    (tmp_path / "labels.jsonl").write_text(json.dumps(
        {"image_i": "a.png", "image_j": "b.png", "p_star": 0.5, "votes_i": 0, "votes_j": 0, "invalid": 4,
         "flagged": False}) + "\n")
    with pytest.raises(ValueError, match="yields no usable labelled pair"):
        train_stage(tiny_model_dir, tmp_path / "labels.jsonl", tmp_path / "out", _config(max_steps=1))


def test_train_command_end_to_end(tiny_model_dir, labelled_pool, tmp_path, capsys):
    from evoquality.cli import main

    _, records = labelled_pool
    (tmp_path / "labels.jsonl").write_text(
        "".join(json.dumps({**r, "votes_i": 1, "votes_j": 0, "invalid": 0, "flagged": False}) + "\n" for r in records))
    args = ["train", "--model", str(tiny_model_dir), "--labels", str(tmp_path / "labels.jsonl"), "--out",
            str(tmp_path / "out"), "--use-cpu", "true", "--bf16", "false", "--num-generations", "2",
            "--images-per-step", "2", "--per-device-train-batch-size", "4", "--max-completion-length", "4",
            "--max-steps", "1", "--gradient-checkpointing", "false"]
    assert main(args) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(tmp_path / "out" / "model")
    # The summary counts, per sampler pass, the labelled pairs that could not be packed (none here: one pair/step).
    summary = json.loads((tmp_path / "out" / "train_summary.json").read_text())
    assert summary["sampler_passes"] == [{"epoch": 0, "pairs": 6, "pairs_used": 6, "pairs_dropped": 0}]
    assert main(args[:-2] + ["--gradient-checkpointing", "sometimes"]) == 2
    assert "config key 'gradient_checkpointing' must be a boolean" in capsys.readouterr().err
