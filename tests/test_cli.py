import json
import subprocess
import sys

import pytest

from evoquality.cli import main


def test_info_json(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["versions"]["evoquality"]
    assert info["versions"]["torch"]
    backends = info["backends"]
    assert backends["cuda"] is False
    assert backends["native_extension"] is True
    assert set(backends) >= {"triton", "triton_interpret", "flash_attn", "codecs"}


def test_info_text_lists_backends(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for word in ("versions:", "backends:", "cuda", "flash_attn", "codecs", "triton_interpret"):
        assert word in out


def test_make_tiny_model_command(tmp_path, capsys):
    assert main(["make-tiny-model", str(tmp_path / "m"), "--seed", "3"]) == 0
    assert "tiny Qwen2.5-VL written to" in capsys.readouterr().out
    from evoquality.modeling import inspect_checkpoint

    assert inspect_checkpoint(tmp_path / "m")[1] == "qwen2_5_vl"


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "make-tiny-model" in capsys.readouterr().out


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "evoquality", "info"], capture_output=True, text=True, check=True)
    assert "backends:" in out.stdout


def test_command_help_lists_its_own_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["make-tiny-model", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--seed" in out and "--max-pixels" in out


def test_importing_the_cli_loads_no_torch():
    """`evoquality --help` imports every command module: they keep torch, transformers and TRL inside functions."""
    code = ("import sys, evoquality, evoquality.cli, evoquality.commands.controls; "
            "heavy = {'torch', 'transformers', 'trl'} & set(sys.modules); assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def _bench_outside_a_checkout(monkeypatch, tmp_path):
    from functools import partial

    from evoquality.commands import bench

    monkeypatch.setattr(bench, "find_checkout", partial(bench.find_checkout, [tmp_path]))


# One bad input per command -> (its argv, part of the message). Each fails before any model is loaded.
BAD_INPUT = {
    "make-tiny-model": (["make-tiny-model", "{tmp}/m", "--max-pixels", "100"], "max_pixels must be >= 784"),
    "label": (["label", "--model", "{tmp}/m", "--images", "{tmp}", "--pairs", "4", "--votes", "0", "--out",
               "{tmp}/o"], "votes must be a positive int, got 0"),
    "train": (["train", "--model", "{tmp}/m", "--labels", "{tmp}", "--out", "{tmp}/o", "--beta", "-1"],
              "beta must be finite and >= 0"),
    "evolve": (["evolve", "--model", "{tmp}/m", "--images", "{tmp}", "--out", "{tmp}/o", "--label-config",
                "{tmp}/none.yaml"], "none.yaml' does not exist"),
    "eval": (["eval", "--dataset", "kadid", "--root", "{tmp}", "--reference", "niqe"], "unknown scorer(s) ['niqe']"),
    "score": (["score", "--model", "{tmp}/m", "{tmp}/a.png"], "or a checkpoint directory"),
    "bench": (["bench", "--quick"], "no source checkout found"),
}


def test_every_command_has_a_bad_input_case():
    from evoquality.cli import COMMANDS

    assert set(BAD_INPUT) | {"info"} == {name for name, _, _ in COMMANDS}


@pytest.mark.parametrize("command", sorted(BAD_INPUT))
def test_a_user_error_is_one_line_on_stderr_and_status_2(command, tmp_path, capsys, monkeypatch):
    argv, message = BAD_INPUT[command]
    if command == "bench":
        _bench_outside_a_checkout(monkeypatch, tmp_path)
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"evoquality {command}: error: ") and message in err and err.count("\n") == 1


def test_a_bad_flag_is_argparse_error_with_status_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["info", "--bogus"])
    assert exit_info.value.code == 2
    assert "evoquality info: error: unrecognized arguments: --bogus" in capsys.readouterr().err


def test_a_bug_is_not_reported_as_a_user_error(monkeypatch):
    from evoquality.commands import info

    def broken(args):
        raise KeyError("a bug keeps its traceback")

    monkeypatch.setattr(info, "run", broken)
    with pytest.raises(KeyError):
        main(["info"])


def test_heldout_samples_belongs_to_the_embedded_default(tmp_path, capsys):
    argv = ["evolve", "--model", str(tmp_path / "m"), "--images", str(tmp_path), "--out", str(tmp_path / "o"),
            "--heldout-samples", "8"]
    assert main(argv) == 2
    assert "--heldout-samples sets the embedded default's report" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_controls_entry_point_reports_user_errors(tmp_path):
    """`python -m evoquality.toy.controls` goes through the commands' error handling too."""
    out = subprocess.run([sys.executable, "-m", "evoquality.toy.controls", "--control", "oracle", "--out",
                          str(tmp_path), "--label-config", str(tmp_path / "none.yaml")],
                         capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("python -m evoquality.toy.controls: error: ") and "none.yaml" in out.stderr
    with pytest.raises(SystemExit):
        from evoquality.commands.controls import main as controls_main

        controls_main(["--control", "oracle", "--model", "m"])
