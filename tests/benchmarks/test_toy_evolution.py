"""benchmarks/toy_evolution.py's summary: per-round gains over seeds, the accuracy of the labels each round trained
on, and the share of the oracle's gain each variant keeps (the runs themselves take minutes; see the README)."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import toy_evolution  # noqa: E402


def _run(variant, seed, srcc, label_acc):
    rows = [{"model": name, "srcc": s, "pair_acc": 0.6, "pseudo_acc": a, "vote_acc": 0.6, "tie_rate": 0.1}
            for name, s, a in zip(["base", "round 1", "round 2"], srcc, label_acc + [None])]
    rows[-1]["pseudo_acc"] = None  # the last model votes for no further round
    return {"variant": variant, "seed": seed, "wall_s": 100.0, "rows": rows}


def test_summary_gains_label_accuracy_and_share_of_the_oracle():
    results = [
        _run("default", 1, [0.2, 0.3, 0.35], [0.65, 0.66]),
        _run("default", 2, [0.2, 0.26, 0.33], [0.64, 0.70]),
        _run("default", 3, [0.2, 0.28, 0.29], [0.66, 0.68]),
        _run("oracle", 1, [0.2, 0.4, 0.5], [1.0, 1.0]),
        _run("coinflip", 1, [0.2, 0.1, 0.05], [0.5, 0.5]),
        {"variant": "oracle", "seed": 2, "error": "exit 1"},  # a failed run is reported, not summarised
    ]
    summary = {s["variant"]: s for s in toy_evolution.summarise(results, rounds=2)}
    d = summary["default"]
    assert d["seeds"] == [1, 2, 3]
    assert d["gain_1_per_seed"] == [0.1, 0.06, 0.08] and d["gain_1"] == pytest.approx(0.08)
    assert d["gain_2"] == pytest.approx(0.05)  # median of +0.05, +0.07, +0.01
    assert (d["label_acc_1"], d["label_acc_2"]) == (0.65, 0.68)
    assert d["gain_total"] == pytest.approx(0.13)
    assert d["share_of_oracle_gain"] == pytest.approx(0.08 / 0.2)  # round 1, the same budget for both
    assert summary["oracle"]["seeds"] == [1] and summary["oracle"]["share_of_oracle_gain"] == pytest.approx(1.0)
    assert summary["coinflip"]["share_of_oracle_gain"] == pytest.approx(-0.1 / 0.2)
    one_round = toy_evolution.summarise([_run("k1", 1, [0.2, 0.27], [0.6])], rounds=2)[0]
    assert (one_round["gain_1"], one_round["gain_2"], one_round["gain_total"]) == (pytest.approx(0.07), None,
                                                                                   pytest.approx(0.07))
    md = toy_evolution.markdown(list(summary.values()), 2, {"device": "cpu", "commit": "abc", "extra_flags": []})
    assert "| default | 1,2,3 | 0.200 | 0.280 | 0.330 | 0.080 (+0.100, +0.060, +0.080) |" in md
    assert "| 40 % |" in md


def test_srcc_figure_median_line_and_seed_spread(tmp_path):
    results = [
        _run("default", 1, [0.2, 0.3, 0.35], [0.65, 0.66]),
        _run("default", 2, [0.2, 0.26, 0.33], [0.64, 0.70]),
        _run("default", 3, [0.2, 0.28, 0.29], [0.66, 0.68]),
        {"variant": "oracle", "seed": 2, "error": "exit 1"},  # a failed run draws nothing
        _run("k1", 1, [0.2, 0.27], [0.6]),  # one round
    ]
    (ax,) = toy_evolution.srcc_figure(results).axes
    default, k1 = ax.containers
    line, _, (bars,) = default.lines
    assert line.get_ydata().tolist() == pytest.approx([0.2, 0.28, 0.33])  # medians over the three seeds
    assert [round(x, 6) for x in line.get_xdata()] == [-0.15, 0.85, 1.85]  # side by side, left of the round
    # one bar per round from the lowest to the highest seed
    assert [sorted(seg[:, 1].tolist()) for seg in bars.get_segments()] == [pytest.approx(v) for v in
                                                                           ([0.2, 0.2], [0.26, 0.3], [0.29, 0.35])]
    assert k1.lines[0].get_ydata().tolist() == pytest.approx([0.2, 0.27])
    assert list(ax.get_xticks()) == [0, 1, 2]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["default (3 seeds)", "k1 (1 seed)"]
    with pytest.raises(ValueError, match="results must hold at least one finished run, got none"):
        toy_evolution.srcc_figure(results[3:4])
    (tmp_path / "toy_evolution.json").write_text(json.dumps({"runs": results}))
    assert toy_evolution.main(["--out", str(tmp_path), "--figure-only"]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"toy_evolution.json", "toy_evolution.png", "toy_evolution.pdf"}


def test_reevaluation_rescores_every_checkpoint_once_and_keeps_the_runs_figures(tmp_path):
    runs = [_run("default", 1, [0.2, 0.3, 0.35], [0.65, 0.66]), _run("oracle", 1, [0.2, 0.4, 0.5], [1.0, 1.0]),
            {"variant": "oracle", "seed": 2, "error": "exit 1"}]
    (tmp_path / "toy_evolution.json").write_text(json.dumps({"meta": {}, "runs": runs}))
    calls = []

    def score(job):
        model, run_dir, n, seed = job
        calls.append(job)
        srcc = 0.1 if model.endswith("base_model_weights") else 0.01 * len(calls)
        return {"srcc": srcc, "pair_acc": 0.5, "parse_fail": 0.0}

    fresh = toy_evolution.reevaluate(tmp_path, 32, jobs=1, score=score)
    assert len(calls) == 5 and {c[2] for c in calls} == {32}  # the base once, then 2 rounds of each finished run
    assert calls[1][0].endswith("default-seed1/round_01/train/model") and calls[1][1].endswith("default-seed1")
    rows = fresh[0]["rows"]
    assert [r["srcc"] for r in rows] == [0.1, 0.02, 0.03] and [r["srcc_run"] for r in rows] == [0.2, 0.3, 0.35]
    assert fresh[1]["rows"][0]["srcc"] == 0.1 and "rows" not in fresh[2]
    again = toy_evolution.reevaluate(tmp_path, 32, jobs=1, score=score)  # everything cached: nothing re-scored
    assert len(calls) == 5 and again[0]["rows"][2]["srcc"] == 0.03
