"""benchmarks/suite.py (`python -m benchmarks`; `evoquality bench` calls its main): every benchmark through its
module's run(argv), rows with spread, anchor ratio, device, versions and commit in CSV/JSON/markdown; a benchmark
that fails or cannot run is a row with the reason, not a crash."""

import argparse
import csv
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
import _rows  # noqa: E402
import suite  # noqa: E402


def test_main_runs_one_benchmark_into_csv_json_and_markdown(tmp_path, capsys):
    assert suite.main(["--quick", "--only", "vote_tally", "--out", str(tmp_path)]) == 0
    progress = capsys.readouterr().out
    assert "[1/1] kernels/vote_tally: started" in progress and "[1/1] kernels/vote_tally: ok, 2 rows" in progress

    with open(tmp_path / "rows.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == _rows.FIELDS
        csv_rows = list(reader)
    saved = json.loads((tmp_path / "rows.json").read_text())
    rows = saved["rows"]
    assert [r["provider"] for r in rows] == [r["provider"] for r in csv_rows] == ["torch", "loop"]
    fast, loop = rows
    for r in rows:
        assert r["benchmark"] == "kernels/vote_tally" and r["status"] == "ok"
        assert r["op"] == "vote_tally" and r["shape"] == "M=20000 K=32"
        assert 0 < r["p20_ms"] <= r["p50_ms"] <= r["p80_ms"] and r["anchor"] == "loop"
        assert r["device"] and r["commit"] == saved["run"]["commit"] != "unknown"
        assert r["torch"] == torch.__version__ and r["evoquality"] and r["trl"] and r["numpy"]
        assert r["throughput"] == pytest.approx(20000 * 32 / (r["p50_ms"] / 1e3)) and r["throughput_unit"] == "votes/s"
    assert fast["ratio_to_anchor"] == pytest.approx(loop["p50_ms"] / fast["p50_ms"]) and loop["ratio_to_anchor"] == 1
    assert float(csv_rows[0]["ratio_to_anchor"]) == pytest.approx(fast["ratio_to_anchor"])

    md = (tmp_path / "summary.md").read_text()
    assert "(quick run)" in md and saved["run"]["commit"] in md and f"torch {torch.__version__}" in md
    assert f"| vote_tally | torch | M=20000 K=32 | {fast['p20_ms']:.4g} / {fast['p50_ms']:.4g} /" in md
    assert suite._ratio(fast["ratio_to_anchor"]) in md
    assert json.loads((tmp_path / "raw" / "vote_tally" / "bench_vote_tally.json").read_text())["rows"] == [
        {k: v for k, v in r.items() if k != "benchmark"} | {"benchmark": None} for r in rows]


def _module(monkeypatch, name, run):
    monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(run=run))


def test_failed_and_skipped_benchmarks_are_rows_and_the_rest_still_runs(tmp_path, capsys, monkeypatch):
    def boom(argv):
        torch.set_num_threads(1)
        print("about to fail")
        raise RuntimeError("boom: extension not built")

    def exits(argv):
        raise SystemExit("the loop and the reference disagree by 0.1: fix before timing")

    def no_gpu(argv):
        raise _rows.Skip("no CUDA device")

    def ok(argv):
        assert argv == ["--size", "1", "--out", str(tmp_path / "raw" / "ok")]
        return [_rows.row("noop", "here", "n=1", _rows.spread(0.001, 0.002, 0.003, 3))]

    for name, fn in (("boom", boom), ("exits", exits), ("no_gpu", no_gpu), ("ok", ok)):
        _module(monkeypatch, f"fake_{name}", fn)
    benches = [suite.Bench("boom", "kernels", "fake_boom", lambda quick: []),
               suite.Bench("exits", "kernels", "fake_exits", lambda quick: []),
               suite.Bench("no_gpu", "kernels", "fake_no_gpu", lambda quick: []),
               suite.Bench("ok", "train", "fake_ok", lambda quick: ["--size", "1" if quick else "9"])]
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


def test_suite_aggregates_every_module_through_run(tmp_path, monkeypatch):
    """Each benchmark's rows reach the table unchanged but for its benchmark name, in BENCHES order."""
    calls = []
    for bench in suite.BENCHES:
        def run(argv, name=bench.name):
            calls.append((name, argv))
            return [_rows.row(f"op_{name}", "torch", "n=1", _rows.spread(0.001, 0.002, 0.003, 3), device="here")]
        _module(monkeypatch, bench.module, run)
    info = {"quick": True, "command": "test", "host": "h", "commit": "abc", "versions": suite.versions(),
            "started_utc": "now"}
    rows = suite.run_benches(suite.BENCHES, quick=True, out=tmp_path, run_info=info)
    assert [c[0] for c in calls] == [b.name for b in suite.BENCHES]
    assert all(argv[-2:] == ["--out", str(tmp_path / "raw" / name)] for name, argv in calls)
    assert [r["benchmark"] for r in rows] == [f"{b.group}/{b.name}" for b in suite.BENCHES]
    assert all(r["device"] == "here" and r["commit"] for r in rows)


def test_each_benchmarks_suite_arguments_parse_in_its_module():
    import importlib

    for bench in suite.BENCHES:
        module = importlib.import_module(bench.module)
        for quick in (True, False):
            module.build_parser().parse_args([*bench.argv(quick), "--out", "x"])


def test_only_selects_groups_and_names():
    assert [b.name for b in suite.select("train,fidelity")] == ["fidelity", "train_step"]
    assert {b.group for b in suite.select("kernels")} == {"kernels"} and len(suite.select(None)) == len(suite.BENCHES)
    with pytest.raises(ValueError, match=r"--only must name groups .* got 'kernel'"):
        suite.select("kernel")


def test_add_arguments_and_run_serve_a_command_line_of_its_own(tmp_path):
    parser = argparse.ArgumentParser()
    suite.add_arguments(parser)
    assert suite.run(parser.parse_args(["--only", "nothing"])) == 2
    assert suite.run(parser.parse_args(["--list"])) == 0


def test_python_dash_m_benchmarks_lists_them():
    out = subprocess.run([sys.executable, "-m", "benchmarks", "--list"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    assert [line.split() for line in out.splitlines()] == [[b.group, b.name] for b in suite.BENCHES]
