"""benchmarks/suite.py (`python -m benchmarks`, `evoquality bench`): rows with spread, anchor ratio, device, versions
and commit in CSV/JSON/markdown; a benchmark that fails or cannot run is a row with the reason, not a crash."""

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
import bench_train_step  # noqa: E402
import suite  # noqa: E402

from evoquality import bench_command  # noqa: E402
from evoquality.cli import main as cli_main  # noqa: E402


def test_cli_runs_one_benchmark_into_csv_json_and_markdown(tmp_path, capsys):
    assert cli_main(["bench", "--quick", "--only", "vote_tally", "--out", str(tmp_path)]) == 0
    progress = capsys.readouterr().out
    assert "[1/1] kernels/vote_tally: started" in progress and "[1/1] kernels/vote_tally: ok, 2 rows" in progress

    with open(tmp_path / "rows.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == suite.FIELDS
        csv_rows = list(reader)
    saved = json.loads((tmp_path / "rows.json").read_text())
    rows = saved["rows"]
    assert [r["provider"] for r in rows] == [r["provider"] for r in csv_rows] == ["torch-reference", "python-loop"]
    fast, loop = rows
    for r in rows:
        assert r["op"] == "vote_tally" and r["shape"] == "M=20000 K=32" and r["status"] == "ok"
        assert 0 < r["p20_ms"] <= r["p50_ms"] <= r["p80_ms"] and r["anchor"] == "python-loop"
        assert r["device"] and r["commit"] == saved["run"]["commit"] != "unknown"
        assert r["torch"] == torch.__version__ and r["evoquality"] and r["trl"] and r["numpy"]
        assert r["throughput"] == pytest.approx(20000 * 32 / (r["p50_ms"] / 1e3)) and r["throughput_unit"] == "votes/s"
    assert fast["ratio_to_anchor"] == pytest.approx(loop["p50_ms"] / fast["p50_ms"]) and loop["ratio_to_anchor"] == 1
    assert float(csv_rows[0]["ratio_to_anchor"]) == pytest.approx(fast["ratio_to_anchor"])

    md = (tmp_path / "summary.md").read_text()
    assert "(quick run)" in md and saved["run"]["commit"] in md and f"torch {torch.__version__}" in md
    assert f"| vote_tally | torch-reference | M=20000 K=32 | {fast['p20_ms']:.4g} / {fast['p50_ms']:.4g} /" in md
    assert suite._ratio(fast["ratio_to_anchor"]) in md
    assert (tmp_path / "raw" / "vote_tally" / "vote_tally_cpu.json").is_file()
    assert "vote tally M=20000 K=32" in (tmp_path / "logs" / "vote_tally.log").read_text()  # the script's print


def _ok(ctx):
    return [suite.row("noop", "here", "n=1", suite.spread(0.001, 0.002, 0.003, 3))]


def _boom(ctx):
    torch.set_num_threads(1)
    print("about to fail")
    raise RuntimeError("boom: extension not built")


def _exits(ctx):
    raise SystemExit("the loop and the reference disagree by 0.1: fix before timing")


def _no_gpu(ctx):
    raise suite.Skip("no CUDA device")


def test_failed_and_skipped_benchmarks_are_rows_and_the_rest_still_runs(tmp_path, capsys):
    benches = [suite.Bench("boom", "kernels", _boom), suite.Bench("exits", "kernels", _exits),
               suite.Bench("no_gpu", "kernels", _no_gpu), suite.Bench("ok", "train", _ok)]
    threads = torch.get_num_threads()
    info = {"quick": True, "command": "test", "host": "test host", "commit": "abc", "versions": suite.versions(),
            "started_utc": "now"}
    rows = suite.run_benches(benches, quick=True, out=tmp_path, run_info=info)
    assert torch.get_num_threads() == threads

    assert [(r["benchmark"], r["status"]) for r in rows] == [
        ("kernels/boom", "failed"), ("kernels/exits", "failed"), ("kernels/no_gpu", "skipped"), ("train/ok", "ok")]
    assert rows[0]["note"] == "RuntimeError: boom: extension not built"
    assert rows[1]["note"].startswith("SystemExit: the loop and the reference disagree")
    assert rows[2]["note"] == "no CUDA device" and rows[3]["p50_ms"] == pytest.approx(2.0)
    log = (tmp_path / "logs" / "boom.log").read_text()
    assert "about to fail" in log and "Traceback" in log and "RuntimeError: boom" in log
    progress = capsys.readouterr().out
    assert "kernels/boom: FAILED: RuntimeError: boom" in progress and "kernels/no_gpu: skipped: no CUDA" in progress

    saved = [r["status"] for r in json.loads((tmp_path / "rows.json").read_text())["rows"]]
    assert saved == ["failed", "failed", "skipped", "ok"]
    md = (tmp_path / "summary.md").read_text()
    assert "rows: 1 ok, 1 skipped, 2 failed" in md and "**failed**: RuntimeError: boom" in md
    assert "| noop | here | n=1 | 1 / 2 / 3 |" in md


def test_only_selects_groups_and_names():
    assert [b.name for b in suite.select("train,fidelity")] == ["fidelity", "train_step"]
    assert {b.group for b in suite.select("kernels")} == {"kernels"} and len(suite.select(None)) == len(suite.BENCHES)
    with pytest.raises(ValueError, match=r"--only must name groups .* got 'kernel'"):
        suite.select("kernel")


def test_gpu_kernel_rows_from_the_recorded_h200_run():
    report = json.loads((REPO / "benchmarks" / "results" / "2026-11-27-h200" / "kernels.json").read_text())
    rows = suite.kernel_rows(report)
    # That run has one failed check (a bf16 advantage just over its bound): it leads, as a failed row.
    failed = [c for c in report["checks"] if not c["ok"]]
    assert len(failed) == 1 and rows[0] == suite.row(failed[0]["op"], "triton", failed[0]["shape"],
                                                    status="failed", note=failed[0]["error"])
    assert all(r["status"] == "ok" for r in rows[1:]) and len(rows) == 1 + sum(
        len([k for k in ("triton", "torch", "loop") if t.get(k)]) for t in report["timings"])
    target = next(t for t in report["timings"] if t.get("target"))
    triton = next(r for r in rows if r["op"] == "fidelity_advantages" and r["provider"] == "triton" and r["note"])
    assert triton["shape"] == "B=512 G=32 partners=8" and triton["note"] == "target MISSED"
    assert triton["anchor"] == "ancestor-loop" and triton["ratio_to_anchor"] == pytest.approx(target["x_vs_loop"])
    assert triton["p50_ms"] == pytest.approx(target["triton"]["p50_s"] * 1e3)
    win = [r for r in rows if r["op"] == "win_matrix"]
    assert [r["provider"] for r in win] == ["triton", "torch-reference"] and win[0]["anchor"] == "torch-reference"
    assert win[0]["ratio_to_anchor"] == pytest.approx(win[1]["p50_ms"] / win[0]["p50_ms"])


def test_train_step_rows_report_every_phase_and_the_non_model_share(tmp_path):
    """One timed tiny step on CPU: the phases add up to the step, and the non-model row is the sum of the
    non-model phases (evoquality.training.timing.NON_MODEL_PHASES) with its share."""
    from evoquality.training.timing import NON_MODEL_PHASES, PHASES

    result = bench_train_step.run(argparse.Namespace(
        out=str(tmp_path), config="tiny", images=2, rollouts=2, max_new_tokens=4, image_size=28, steps=1,
        micro_batch=4, beta=0.0, attn="sdpa", workdir=str(tmp_path)))
    rows = {r["op"].split("/")[1]: r for r in suite.train_rows(result)}
    assert list(rows) == [*PHASES, "total", "non_model"]
    total = rows["total"]["p50_ms"]
    assert sum(rows[p]["p50_ms"] for p in PHASES) == pytest.approx(total, rel=1e-6)
    assert rows["generation"]["p50_ms"] > 0 and rows["forward_backward"]["p50_ms"] > 0
    non_model = sum(rows[p]["p50_ms"] for p in NON_MODEL_PHASES)
    assert rows["non_model"]["p50_ms"] == pytest.approx(non_model)
    assert rows["non_model"]["share_of_step"] == pytest.approx(non_model / total, rel=1e-6)
    assert rows["total"]["throughput_unit"] == "tokens/s" and rows["total"]["throughput"] > 0


def test_bench_command_needs_a_source_checkout(tmp_path):
    assert bench_command.find_checkout() == REPO
    with pytest.raises(SystemExit, match="no source checkout found"):
        bench_command.find_checkout([tmp_path])


def test_python_dash_m_benchmarks_lists_them():
    out = subprocess.run([sys.executable, "-m", "benchmarks", "--list"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    assert [line.split() for line in out.splitlines()] == [[b.group, b.name] for b in suite.BENCHES]
