"""The round loop: `evoquality evolve` runs the embedded default end to end, and a run killed in the middle of
training resumes without redoing or losing finished work."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evoquality.training.config import make_config
from evoquality.training.rounds import EvolveSettings, _check_or_write_state, label_config, round_dir
from evoquality.training.stage import final_model_dir

# Small enough for two rounds on two loaded CPU cores; everything else is the embedded default (no --model).
FLAGS = ["--rounds", "2", "--use-cpu", "true", "--label-pairs", "6", "--label-same-content-pairs", "0",
         "--label-votes", "2", "--label-max-new-tokens",
         "6", "--label-batch-items", "3", "--num-generations", "2", "--images-per-step", "2",
         "--per-device-train-batch-size", "4", "--max-completion-length", "6", "--max-steps", "3",
         "--save-steps", "1", "--beta", "0.05"]


def _cmd(out: Path):
    return [sys.executable, "-m", "evoquality", "evolve", "--out", str(out), *FLAGS]


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1")


@pytest.mark.slow
def test_killed_run_resumes_without_redoing_finished_work(tmp_path):
    out = tmp_path / "run"
    ckpt = out / "round_01" / "train" / "checkpoint-1" / "trainer_state.json"
    proc = subprocess.Popen(_cmd(out), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 400
        while not ckpt.is_file():
            assert proc.poll() is None, f"evolve exited early: {proc.stderr.read()[-3000:]}"
            assert time.time() < deadline, "no checkpoint appeared"
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)  # mid-training: stage 1 of round 1 is finished, stage 2 is not
    finally:
        proc.wait()
    labels1 = out / "round_01" / "labels" / "labels.jsonl"
    assert labels1.is_file() and not (out / "round_01" / "DONE").exists()
    labels_before = (labels1.read_bytes(), labels1.stat().st_mtime_ns)
    pool_before = (out / "default_pool" / "pool.jsonl").stat().st_mtime_ns

    done = subprocess.run(_cmd(out), env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    final = out / "round_02" / "train" / "model"
    assert done.stdout.strip().splitlines()[-1] == str(final)

    # Nothing finished was redone: stage-1 labels of round 1 and the pool untouched.
    assert (labels1.read_bytes(), labels1.stat().st_mtime_ns) == labels_before
    assert (out / "default_pool" / "pool.jsonl").stat().st_mtime_ns == pool_before
    # Training resumed from the checkpoint the killed run left, and finished its steps.
    summary1 = json.loads((out / "round_01" / "train" / "train_summary.json").read_text())
    assert summary1["resumed_from"] is not None and summary1["resumed_from"].endswith(("checkpoint-1", "checkpoint-2"))
    assert summary1["global_step"] == 3
    # Round 2 relabelled with round 1's evolved model, and trained from it.
    fp2 = json.loads((out / "round_02" / "labels" / "config.json").read_text())["fingerprint"]
    assert fp2["model"] == str((out / "round_01" / "train" / "model").resolve())
    assert json.loads((out / "round_02" / "train" / "train_summary.json").read_text())["model"] == str(
        out / "round_01" / "train" / "model")
    state = json.loads((out / "evolve.json").read_text())
    assert [r["round"] for r in state["rounds"]] == [1, 2]
    assert (final / "config.json").is_file() and (out / "round_02" / "DONE").is_file()

    # A finished run started again does nothing and returns the same model.
    mtime = (final / "model.safetensors").stat().st_mtime_ns
    again = subprocess.run(_cmd(out), env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] == str(final)
    assert (final / "model.safetensors").stat().st_mtime_ns == mtime


def test_resume_with_different_settings_is_refused(tmp_path):
    first = EvolveSettings(out=str(tmp_path), model="m", images="i", train=make_config(None, {"beta": 0.05}))
    _check_or_write_state(tmp_path, first, is_main=True)
    more = EvolveSettings(out=str(tmp_path), model="m", images="i", rounds=5, train=make_config(None, {"beta": 0.05}))
    _check_or_write_state(tmp_path, more, is_main=True)  # more rounds: allowed (extends the run)
    with pytest.raises(ValueError, match=r"different settings \(train\)"):
        other = EvolveSettings(out=str(tmp_path), model="m", images="i", train=make_config(None, {"beta": 0.1}))
        _check_or_write_state(tmp_path, other, is_main=True)


def test_round_two_adds_the_papers_synthetic_pairs_by_default(tmp_path):
    s = EvolveSettings(out=str(tmp_path), model="m", images="i", label={"pairs": 10, "same_content_pairs": 4})
    assert (s.round2_variants, s.round2_same_content_pairs) == (10, 20_000)  # [paper] 10 variants; [decision] pairs
    r1 = label_config(s, 1, tmp_path / "m", "imgs", tmp_path / "l1")
    r2 = label_config(s, 2, tmp_path / "m", "imgs", tmp_path / "l2")
    assert (r1.variants, r1.variant_pairs, r1.same_content_pairs) == (0, 0, 4)
    # On top of the round's own pairs, drawn among each image and its own variants.
    assert (r2.variants, r2.variant_pairs, r2.same_content_pairs, r2.pairs) == (10, 20_000, 4, 10)
    assert s.departures() == []


def test_turning_round_two_synthetic_pairs_off_is_a_loud_departure(tmp_path, caplog):
    s = EvolveSettings(out=str(tmp_path / "run"), model="m", images="i", rounds=2, round2_variants=0,
                       round2_same_content_pairs=0)
    (departure,) = s.departures()
    assert "round 2 without synthetic same-content pairs" in departure
    assert EvolveSettings(out="x", model="m", images="i", rounds=1, round2_variants=0,
                          round2_same_content_pairs=0).departures() == []
    _check_or_write_state(tmp_path / "run", s, is_main=True)
    assert json.loads((tmp_path / "run" / "evolve.json").read_text())["departures"] == [departure]
    with caplog.at_level("WARNING", logger="evoquality.training.rounds"):
        with pytest.raises(FileNotFoundError, match="model directory 'm' does not exist"):  # after the warning
            from evoquality.training.rounds import evolve

            evolve(s)
    assert "evolve departs from the paper: round 2 without synthetic same-content pairs" in caplog.text


def test_stage_two_batch_arithmetic_fails_before_stage_one(tmp_path):
    """With the comparison prompt trained too, a step has 12 prompts x 8 rollouts = 96: a batch of 64 cannot split
    it. That is refused before round 1 labels anything, not after its stage 1."""
    from evoquality.training.rounds import evolve

    s = EvolveSettings(out=str(tmp_path / "run"), model="m", images="i",
                       train=make_config(None, {"train_compare": True, "images_per_step": 8, "num_generations": 8,
                                                "per_device_train_batch_size": 64, "use_cpu": True}))
    with pytest.raises(ValueError, match=r"= 96\) must be divisible by per_device_train_batch_size \* num_processes = 64"):
        evolve(s)
    assert not (tmp_path / "run").exists()


def test_round_settings(tmp_path):
    s = EvolveSettings(out=str(tmp_path), model="m", images="i", label={"pairs": 10}, round2_variants=10,
                       round2_same_content_pairs=50, train=make_config(None, {"seed": 4}))
    r1 = label_config(s, 1, tmp_path / "m", "imgs", tmp_path / "l1")
    r2 = label_config(s, 2, tmp_path / "m", "imgs", tmp_path / "l2")
    assert (r1.seed, r1.variants, r1.variant_pairs, r1.pairs) == (5, 0, 0, 10)
    assert (r2.seed, r2.variants, r2.variant_pairs) == (6, 10, 50)
    with pytest.raises(ValueError, match="round2_variants and round2_same_content_pairs go together"):
        EvolveSettings(out="x", model="m", images="i", round2_variants=0, round2_same_content_pairs=5).validate()
    with pytest.raises(ValueError, match="label config must not set 'model'"):
        EvolveSettings(out="x", model="m", images="i", label={"model": "m"}).validate()
    with pytest.raises(ValueError, match="rounds must be a positive int"):
        EvolveSettings(out="x", model="m", images="i", rounds=0).validate()
    with pytest.raises(ValueError, match="model and images must be given"):
        EvolveSettings(out="x", model="", images="i").validate()


def test_learning_rate_of_each_round(tmp_path):
    """`lr_round_factor`: round t trains at learning_rate x factor^(t-1) (1 = every round alike, the default), each
    round with its own seed; a factor outside (0, 1] is refused; the factor is part of what a resume must match."""
    from evoquality.training.rounds import round_train_config

    train = make_config(None, {"seed": 4, "learning_rate": 1e-4})
    same = EvolveSettings(out=str(tmp_path), model="m", images="i", train=train)
    assert [round_train_config(same, t).learning_rate for t in (1, 2, 3)] == [1e-4, 1e-4, 1e-4]
    halving = EvolveSettings(out=str(tmp_path), model="m", images="i", train=train, lr_round_factor=0.5)
    configs = [round_train_config(halving, t) for t in (1, 2, 3)]
    assert [c.learning_rate for c in configs] == pytest.approx([1e-4, 5e-5, 2.5e-5], rel=1e-12)
    assert [c.seed for c in configs] == [5, 6, 7] and train.learning_rate == 1e-4  # the settings are not changed
    for bad in (0, 1.5, -0.5):
        with pytest.raises(ValueError, match="lr_round_factor must be in"):
            EvolveSettings(out="x", model="m", images="i", lr_round_factor=bad).validate()
    _check_or_write_state(tmp_path, same, is_main=True)
    with pytest.raises(ValueError, match=r"different settings \(lr_round_factor\)"):
        _check_or_write_state(tmp_path, halving, is_main=True)


def _evolve_flags_settings(tmp_path, *flags):
    """EvolveSettings as `evoquality evolve --out tmp_path FLAGS` builds them."""
    import argparse

    from evoquality.commands import evolve

    parser = argparse.ArgumentParser()
    evolve.add_arguments(parser)
    return evolve.settings_from_args(parser.parse_args(["--out", str(tmp_path), *flags]))


def test_embedded_default_halves_the_learning_rate_each_round_and_a_flag_overrides_it(tmp_path):
    """The toy preset's lr_round_factor 0.5 (docs/toy.md) applies without --model; --lr-round-factor overrides it; a
    run on the user's own model keeps EvolveSettings' default (1: every round at the configured rate)."""
    toy = _evolve_flags_settings(tmp_path)
    assert toy.lr_round_factor == 0.5 and (toy.round2_variants, toy.round2_same_content_pairs) == (10, 480)
    assert _evolve_flags_settings(tmp_path, "--lr-round-factor", "1").lr_round_factor == 1.0
    assert _evolve_flags_settings(tmp_path, "--model", "m", "--images", "i").lr_round_factor == 1.0


def test_embedded_default_anchors_every_round_to_the_initial_model_and_a_flag_overrides_it(tmp_path):
    """The toy preset's KL reference is the initial model (docs/toy.md); --ref-model round_start gives the library's
    default back; a run on the user's own model keeps the library's default (the round start, docs/method.md)."""
    assert _evolve_flags_settings(tmp_path).train.ref_model == "initial"
    assert _evolve_flags_settings(tmp_path, "--ref-model", "round_start").train.ref_model == "round_start"
    assert _evolve_flags_settings(tmp_path, "--model", "m", "--images", "i").train.ref_model == "round_start"


@pytest.mark.parametrize("ref_model", ["round_start", "initial"])
def test_kl_reference_of_every_round(tmp_path, monkeypatch, ref_model):
    """`ref_model`: stage 2 of every round gets the initial model as its KL reference (`initial`), or none, which
    train_stage reads as the model it starts from (`round_start`); each round starts from the last one's model."""
    import evoquality.labelling
    from evoquality.labelling.labels import LABELS_FILE
    from evoquality.training import rounds

    calls = []

    def fake_labelling(cfg, backend_factory=None):
        Path(cfg.out).mkdir(parents=True)
        (Path(cfg.out) / LABELS_FILE).write_text("")

    def fake_train_stage(model, labels, out_dir, config, *, ref_model=None, image_loader=None):
        calls.append((Path(model), ref_model))

    monkeypatch.setattr(evoquality.labelling, "run_labelling", fake_labelling)
    monkeypatch.setattr(rounds, "train_stage", fake_train_stage)
    run, model0 = tmp_path / "run", tmp_path / "m0"
    s = EvolveSettings(out=str(run), model=str(model0), images="i", rounds=3,
                       train=make_config(None, {"use_cpu": True, "ref_model": ref_model}))
    rounds.evolve(s)
    assert [start for start, _ in calls] == [model0] + [final_model_dir(round_dir(run, t) / "train") for t in (1, 2)]
    assert [ref for _, ref in calls] == [model0 if ref_model == "initial" else None] * 3
