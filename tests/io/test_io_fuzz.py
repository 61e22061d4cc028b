"""Short deterministic fuzz run of the native decoders (the long, coverage-guided run is documented in
fuzz_decode.py). A subprocess, so that a crash fails this test instead of killing the test session."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import evoquality.io as eio

pytestmark = pytest.mark.skipif(not eio.native_available(), reason="native extension not built")


def test_mutation_fuzz_short_run(tmp_path):
    script = os.path.join(os.path.dirname(__file__), "fuzz_decode.py")
    proc = subprocess.run([sys.executable, script, "--iterations", "2000", "--seed", "0", "--time-budget", "60"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"fuzz finding (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}"
    assert "fuzz: 2000 inputs" in proc.stdout
    assert not list(tmp_path.glob("fuzz-crash-*"))
