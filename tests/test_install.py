"""The package imports from both kinds of install: the editable one the tests run on, and a regular wheel."""

import json
import os
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


# Run in a fresh interpreter from an empty directory, so sys.path holds only what the installation put there (plus
# that empty directory for -c). For every directory of the checkout's parent (the checkout itself among them: to its
# parent it is one more sibling folder) and of the checkout, print where an import of that name would be found.
_CHECKOUT_LEAKS = """
import importlib.util, json, sys
from pathlib import Path
import evoquality

root = Path(sys.argv[1])

def found_at(name, directory):
    # True when importing `name` would load `directory` itself (a namespace package or its __init__.py).
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    places = [*(spec.submodule_search_locations or []), *([spec.origin] if spec.origin else [])]
    return any(Path(p).resolve() in (directory, directory / "__init__.py") for p in places)

def folders(parent):
    return sorted(d for d in parent.iterdir() if d.is_dir() and d.name.isidentifier())

print(json.dumps({
    "package": evoquality.__file__,
    "ancestors_on_path": [p for p in sys.path if p and Path(p).resolve() in (root, *root.parents)],
    "siblings": [d.name for d in folders(root.parent) if found_at(d.name, d)],
    # kernels/ is meant to be evoquality.kernels; no other folder of the checkout is part of the package.
    "subpackages": [d.name for d in folders(root) if d.name != "kernels" and found_at("evoquality." + d.name, d)],
}))
"""


def test_the_editable_install_exposes_only_the_package_from_the_checkout(tmp_path):
    # A path entry for the checkout's parent made every sibling folder of the checkout an importable top-level
    # package (a sibling `vllm/` folder shadowed the real one in TRL's import), and the checkout's root among
    # evoquality's package paths made `evoquality.tests`, `evoquality.csrc`, ... importable.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", _CHECKOUT_LEAKS, str(ROOT)], capture_output=True, text=True,
                         env=env, cwd=tmp_path, check=True)
    seen = json.loads(out.stdout)
    # The tests run against the editable install of this checkout, else nothing here is about it.
    assert Path(seen["package"]).resolve() == ROOT / "python" / "evoquality" / "__init__.py"
    leaks = {key: seen[key] for key in ("ancestors_on_path", "siblings", "subpackages")}
    assert leaks == {"ancestors_on_path": [], "siblings": [], "subpackages": []}


def test_imports_from_the_installed_package():
    pkg, kernels, native, codecs = _run_imports()
    assert Path(kernels).parent.name == "kernels"
    # The editable install serves the checkout's kernels/ live, not a copy made at install time.
    assert Path(kernels).resolve() == ROOT / "kernels" / "__init__.py"
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
