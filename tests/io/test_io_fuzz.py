"""Short fuzz runs of the native decoders in CI (the long sanitizer run is recorded in benchmarks/results/; recipes in
fuzz_decode.py). Subprocesses, so that a crash fails the test instead of killing the test session. Together at most
~2 minutes: the mutation driver on the built-in seeds, then on the public image corpus when it is present, then
atheris (libFuzzer's mutators) on whichever seeds exist."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys

import pytest

import evoquality.io as eio

pytestmark = pytest.mark.skipif(not eio.native_available(), reason="native extension not built")
SCRIPT = os.path.join(os.path.dirname(__file__), "fuzz_decode.py")


def _run(args: list[str], cwd) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, SCRIPT, *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"fuzz finding (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}"
    assert not list(cwd.glob("fuzz-crash-*")) and not list(cwd.glob("crash-*"))
    return proc


def test_mutation_fuzz_short_run(tmp_path):
    proc = _run(["--iterations", "2000", "--seed", "0", "--time-budget", "60"], tmp_path)
    assert "fuzz: 2000 inputs from 31 seeds" in proc.stdout


@pytest.mark.corpus
def test_mutation_fuzz_seeded_with_image_corpus(tmp_path, shared_data):
    proc = _run(["--iterations", "30000", "--seed", "1", "--time-budget", "40",
                 "--seed-dir", str(shared_data / "image-corpus")], tmp_path)
    assert " inputs from 10" in proc.stdout  # 31 built-in + ~1,000 corpus files of <= 64 KiB


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris not installed (requirements-ci.txt)")
def test_atheris_short_run(tmp_path, shared_data_dir):
    corpus = shared_data_dir / "image-corpus"
    seed_dirs = ["--seed-dir", str(corpus)] if corpus.is_dir() else []
    # A fixed libFuzzer seed: the run is then the same every time (libFuzzer's default seed is the clock, and some
    # seeds' 30,000 mutations never reach a recovery path: seed 1 without the corpus gives 0 warnings).
    proc = _run(["-atheris", *seed_dirs, "-seed=2", "-runs=30000", "-max_total_time=40", "-max_len=65536",
                 "-keep_seed=1", "-len_control=0", "-entropic=0", "-prefer_small=0", "-rss_limit_mb=2048",
                 str(tmp_path / "corpus")],
                tmp_path)
    assert "Done" in proc.stderr and "ERROR" not in proc.stderr, proc.stderr[-2000:]
    # The mutations reach the decoders' recovery paths, not only their first checks.
    last = [line for line in proc.stderr.splitlines() if "executions: {" in line][-1]
    tally = ast.literal_eval(last.split("executions: ", 1)[1])
    assert tally["warning"] > 0 and tally["ok"] > 0, last
