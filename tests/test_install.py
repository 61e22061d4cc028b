"""The package imports from both kinds of install: the editable one the tests run on, and a regular wheel."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_IMPORTS = (
    "import evoquality, evoquality.kernels, evoquality._native as n; "
    "print(evoquality.__file__); print(evoquality.kernels.__file__); print(n.__file__); print(sorted(n.codecs()))"
)


def _run_imports(env_path=None):
    env, flags = None, []
    if env_path is not None:
        import os

        # -S: without site-packages the editable install's import hook cannot shadow the wheel's copy (the
        # imports checked here need nothing else).
        env, flags = {**os.environ, "PYTHONPATH": str(env_path)}, ["-S"]
    out = subprocess.run([sys.executable, *flags, "-c", _IMPORTS], capture_output=True, text=True, env=env,
                         check=True)
    return out.stdout.splitlines()


def test_import_evoquality_does_not_import_heavy_modules():
    code = "import sys, evoquality; print(sorted(m for m in ('torch','triton','transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_imports_from_the_installed_package():
    pkg, kernels, native, codecs = _run_imports()
    assert Path(kernels).parent.name == "kernels"
    assert native.endswith(".so")
    assert codecs.startswith("[")


@pytest.mark.slow
def test_imports_from_a_regular_wheel_install(tmp_path):
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q", "-w", str(wheel_dir),
         "--config-settings=build-dir=" + str(tmp_path / "build"), str(ROOT)],
        check=True, capture_output=True,
    )
    (wheel,) = wheel_dir.glob("evoquality-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    pkg, kernels, native, _ = _run_imports(target)
    # Imported from the wheel's copy, not from the source tree.
    for path in (pkg, kernels, native):
        assert Path(path).is_relative_to(target), path
    assert Path(kernels).relative_to(target).parts[:2] == ("evoquality", "kernels")
    # Data files travel too: the extension's type stub, the shipped accelerate configs, the toy base model.
    assert (target / "evoquality" / "_native.pyi").is_file()
    assert sorted(p.name for p in (target / "evoquality" / "training" / "configs").glob("*.yaml")) == [
        "ddp.yaml", "fsdp2.yaml", "multinode_zero3.yaml", "zero3.yaml"]
    toy = target / "evoquality" / "toy" / "base_model_weights"
    shipped = ROOT / "python" / "evoquality" / "toy" / "base_model_weights" / "model.safetensors"
    assert (toy / "model.safetensors").read_bytes() == shipped.read_bytes()
    shipped_files = {p.name for p in toy.iterdir()}
    assert {"config.json", "tokenizer.json", "evoquality_toy.json", "warmup_log.jsonl"} <= shipped_files
