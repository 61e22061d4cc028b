"""benchmarks/gpu_kernels.py runs unattended on the one GPU session: exercise it end to end here (--smoke: tiny
sizes on CPU through the Triton interpreter) so that session is not lost to a script error. Its timings come from
the bench modules' run(argv) with the triton provider; kernels.md keeps the tables of the recorded GPU runs."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RECORDED = REPO / "benchmarks" / "results" / "2026-11-27-h200" / "kernels.md"


def test_gpu_kernels_script_smoke(tmp_path):
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_kernels.py"), "--out", str(tmp_path), "--smoke"],
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads((tmp_path / "kernels.json").read_text())
    assert report["smoke"] and report["checks"] and all(c["ok"] for c in report["checks"])
    rows = report["rows"]
    assert {r["op"] for r in rows} == {"fidelity_advantages", "win_matrix", "win_matrix(pairs)", "vote_tally",
                                       "group_advantages"}
    assert all(r["status"] == "ok" and r["commit"] and r["device"] for r in rows)
    # the target shape first, every provider of it timed: the interpreted kernel, the torch reference, the loop
    first = [r for r in rows if (r["op"], r["shape"]) == (rows[0]["op"], rows[0]["shape"])]
    assert rows[0]["shape"] == "B=16 G=8 partners=8" and [r["provider"] for r in first] == ["torch", "triton", "loop"]
    assert len({(r["op"], r["shape"], r["provider"]) for r in rows}) == len(rows)

    md = (tmp_path / "kernels.md").read_text()
    assert "## Correctness" in md and "## Timings" in md and report["commit"] in md
    # the same table layout as the recorded GPU run, so the two read side by side
    headers = [line for line in RECORDED.read_text().splitlines() if line.startswith("| op |")]
    assert headers and all(h in md for h in headers)
