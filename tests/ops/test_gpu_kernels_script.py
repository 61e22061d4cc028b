"""benchmarks/gpu_kernels.py runs unattended on the one GPU session: exercise it end to end here (--smoke: tiny
sizes on CPU through the Triton interpreter) so that session is not lost to a script error."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gpu_kernels_script_smoke(tmp_path):
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_kernels.py"), "--out", str(tmp_path), "--smoke"],
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads((tmp_path / "kernels.json").read_text())
    assert report["smoke"] and report["checks"] and all(c["ok"] for c in report["checks"])
    ops = {t["op"] for t in report["timings"]}
    assert {"fidelity_advantages", "win_matrix", "win_matrix(pairs)", "vote_tally", "group_advantages"} <= ops
    assert any(t.get("target") for t in report["timings"])
    md = (tmp_path / "kernels.md").read_text()
    assert "## Correctness" in md and "## Timings" in md and report["commit"] in md
