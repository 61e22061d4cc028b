"""The compiled (not interpreted) kernels build for sm_90 with the pinned Triton: see compile_sm90.py."""

import os
import subprocess
import sys
from pathlib import Path


def test_every_launched_kernel_variant_compiles_for_sm90(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "triton-cache")  # compile for real, not from a warm cache
    script = Path(__file__).with_name("compile_sm90.py")
    run = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert " 0 failed" in run.stdout
