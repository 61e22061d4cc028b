import json
import subprocess
import sys

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
    import pytest

    with pytest.raises(SystemExit) as exit_info:
        main(["make-tiny-model", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--seed" in out and "--max-pixels" in out
