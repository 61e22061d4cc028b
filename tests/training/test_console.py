"""What a training run shows and records: a progress bar with a few live figures on the console (never TRL's raw
log dict), every logged value in metrics.jsonl, and with --report-to tensorboard the same values as event files."""

import json
from types import SimpleNamespace

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def test_console_shows_a_bar_with_figures_and_trackers_get_every_value(scoring_model_dir, labelled_pool, tmp_path,
                                                                         capsys):
    from evoquality.cli import main

    _, records = labelled_pool
    (tmp_path / "labels.jsonl").write_text(
        "".join(json.dumps({**r, "votes_i": 1, "votes_j": 0, "invalid": 0, "flagged": False}) + "\n" for r in records))
    out = tmp_path / "out"
    assert main(["train", "--model", str(scoring_model_dir), "--labels", str(tmp_path / "labels.jsonl"), "--out",
                 str(out), "--use-cpu", "true", "--bf16", "false", "--num-generations", "2", "--images-per-step", "2",
                 "--per-device-train-batch-size", "4", "--max-completion-length", "10", "--max-steps", "2",
                 "--gradient-checkpointing", "false", "--logging-steps", "1", "--report-to", "tensorboard"]) == 0
    console = capsys.readouterr()
    lines = (console.out + console.err).replace("\r", "\n").splitlines()
    assert not [line for line in lines if "{" in line or "'loss'" in line]  # no raw metrics dict
    assert any("2/2" in line and "reward=" in line and "parse fail=" in line and "KL=" in line for line in lines)

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "fidelity/parse_failure_rate" in r]
    assert [r["step"] for r in steps] == [1, 2]
    assert all({"kl", "loss", "fidelity/rewarded_share", "time/generation"} <= set(r) for r in steps)
    assert "train_runtime" in rows[-1]

    (events,) = out.glob("runs/*/events.out.tfevents.*")
    acc = EventAccumulator(str(events.parent))
    acc.Reload()
    for key in ("kl", "fidelity/parse_failure_rate", "time/generation"):
        logged = [(e.step, e.value) for e in acc.Scalars(f"train/{key}")]
        assert logged == [(r["step"], pytest.approx(r[key], rel=1e-6)) for r in steps], key


def test_without_a_bar_the_figures_are_one_short_line_per_log(capsys):
    from evoquality.training.trainer import ConsoleProgressCallback

    args = SimpleNamespace(disable_tqdm=True)
    state = SimpleNamespace(is_world_process_zero=True, max_steps=4, global_step=2)
    callback = ConsoleProgressCallback()
    callback.on_train_begin(args, state, None)
    callback.on_log(args, state, None, logs={"fidelity/reward_mean": 0.51234, "kl": 0.002, "loss": 0.1})
    callback.on_log(args, state, None, logs={"train_runtime": 3.0})  # no figure: nothing printed
    callback.on_step_end(args, state, None)
    callback.on_train_end(args, state, None)
    console = capsys.readouterr()
    assert (console.out, console.err) == ("step 2/4: reward 0.512, parse fail —, KL 0.002\n", "")
