"""Every benchmarks/bench_<op>.py has the one interface (benchmarks/_rows.py): PROVIDERS, ANCHOR, run(argv) -> rows,
main(argv); a tiny run of each returns well-formed rows for its CPU providers, and triton on CPU is a skipped row
with the reason unless asked for under the interpreter — never a number."""

import importlib
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
import _rows  # noqa: E402
import suite  # noqa: E402

from evoquality.io import native_available  # noqa: E402

MODULES = sorted(p.stem for p in (REPO / "benchmarks").glob("bench_*.py"))

# The smallest sizes each module takes: a few seconds each on one CPU core.
TINY = {
    "bench_fidelity": ["--images", "8", "--rollouts", "4", "--partners", "2", "--reps", "3"],
    "bench_group_advantage": ["--images", "8", "--rollouts", "4", "--reps", "3"],
    "bench_vote_tally": ["--pairs", "50", "--votes", "4", "--reps", "3"],
    "bench_win_matrix": ["--images", "20", "--samples", "4", "--pairs", "10", "--reps", "3"],
    "bench_image_pipeline": ["--threads", "1", "--rounds", "1", "--cases", "jpeg-1024x768-200k"],
    "bench_normalize_patchify": ["--repeats", "1"],
    "bench_image_path": ["--cases", "toy", "--images", "2", "--pairs", "1", "--rollouts", "2", "--rounds", "1",
                         "--reps", "1"],
    "bench_labelling": ["--pairs", "1", "--votes", "2", "--max-new-tokens", "2", "--image-side", "56", "--repeats",
                        "1", "--threads", "1"],
    "bench_train_step": ["--config", "tiny", "--images", "2", "--rollouts", "2", "--max-new-tokens", "4",
                         "--image-size", "28", "--steps", "1", "--beta", "0"],
}
KERNELS = ("bench_fidelity", "bench_group_advantage", "bench_vote_tally", "bench_win_matrix")


def test_every_bench_module_has_the_interface_and_a_place_in_the_suite():
    assert len(MODULES) >= 8 and set(MODULES) == set(TINY)
    for name in MODULES:
        module = importlib.import_module(name)
        assert isinstance(module.PROVIDERS, tuple) and module.PROVIDERS, name
        assert module.ANCHOR is None or module.ANCHOR in module.PROVIDERS, name
        assert callable(module.run) and callable(module.main), name
    assert set(MODULES) <= {b.module for b in suite.BENCHES}


def check_rows(rows: list[dict], providers) -> None:
    assert rows
    for r in rows:
        assert tuple(r) == _rows.FIELDS and r["op"] and r["shape"] and r["provider"] in providers, r
        assert r["device"] and r["commit"] and r["torch"], r
        if r["status"] == "ok":  # 0 is a time: the training step's weight sync without vLLM
            assert 0 <= r["p20_ms"] <= r["p50_ms"] <= r["p80_ms"], r
        else:
            assert r["status"] == "skipped" and r["note"] and r["p50_ms"] is None, r


@pytest.mark.parametrize("name", KERNELS)
def test_kernel_module_times_its_cpu_providers_beside_the_anchor(name, tmp_path):
    module = importlib.import_module(name)
    rows = module.run(TINY[name] + ["--out", str(tmp_path)])
    check_rows(rows, module.PROVIDERS)
    # conftest sets TRITON_INTERPRET=1, yet triton was not asked for by name: skipped, with the way to ask.
    triton = [r for r in rows if r["provider"] == "triton"]
    assert triton and all(r["status"] == "skipped" and "no CUDA device" in r["note"] for r in triton)
    ok = [r for r in rows if r["status"] == "ok"]
    assert {r["provider"] for r in ok} == set(module.PROVIDERS) - {"triton"}
    for op in {r["op"] for r in ok}:
        mine = {r["provider"]: r for r in ok if r["op"] == op}
        if len(mine) == 1:  # the anchor alone: no ratio to itself
            assert [(r["anchor"], r["ratio_to_anchor"]) for r in mine.values()] == [(None, None)]
            continue
        base = mine[module.ANCHOR]["p50_ms"]
        assert all(r["anchor"] == module.ANCHOR and r["ratio_to_anchor"] == pytest.approx(base / r["p50_ms"])
                   for r in mine.values())
    assert (tmp_path / f"{name}.json").is_file()
    assert module.main(TINY[name] + ["--providers", "torch"]) == 0


def test_triton_runs_on_cpu_only_when_named_under_the_interpreter():
    import bench_group_advantage

    rows = bench_group_advantage.run(TINY["bench_group_advantage"] + ["--providers", "triton,trl"])
    assert [r["provider"] for r in rows] == ["triton", "trl"] and rows[0]["status"] == "ok"
    assert rows[0]["note"] == _rows.INTERPRETER_NOTE
    with pytest.raises(SystemExit, match="--providers must name some of torch, triton, trl, got 'cuda'"):
        bench_group_advantage.run(["--providers", "cuda"])


NEEDS_NATIVE = pytest.mark.skipif(not native_available(), reason="times the native extension")


@pytest.mark.parametrize("name", [pytest.param("bench_image_pipeline", marks=NEEDS_NATIVE),
                                  pytest.param("bench_normalize_patchify", marks=NEEDS_NATIVE),
                                  pytest.param("bench_image_path", marks=NEEDS_NATIVE),
                                  "bench_labelling", "bench_train_step"])
def test_model_and_image_modules_return_rows(name, tmp_path):
    module = importlib.import_module(name)
    rows = module.run(TINY[name] + ["--out", str(tmp_path)])
    check_rows(rows, (*module.PROVIDERS, ""))
    assert any(r["status"] == "ok" and r["p50_ms"] > 0 for r in rows)


def test_train_step_rows_report_every_phase_and_the_non_model_share(tmp_path):
    """One timed tiny step on CPU: the phases add up to the step, and the non-model row is the sum of the
    non-model phases (evoquality.training.timing.NON_MODEL_PHASES) with its share."""
    import bench_train_step

    from evoquality.training.timing import NON_MODEL_PHASES, PHASES

    rows = {r["op"].split("/")[1]: r for r in bench_train_step.run(TINY["bench_train_step"] + ["--out", str(tmp_path)])}
    assert list(rows) == [*PHASES, "total", "non_model"]
    total = rows["total"]["p50_ms"]
    assert sum(rows[p]["p50_ms"] for p in PHASES) == pytest.approx(total, rel=1e-6)
    assert rows["generation"]["p50_ms"] > 0 and rows["forward_backward"]["p50_ms"] > 0
    non_model = sum(rows[p]["p50_ms"] for p in NON_MODEL_PHASES)
    assert rows["non_model"]["p50_ms"] == pytest.approx(non_model)
    assert rows["non_model"]["share_of_step"] == pytest.approx(non_model / total, rel=1e-6)
    assert rows["total"]["throughput_unit"] == "tokens/s" and rows["total"]["throughput"] > 0
