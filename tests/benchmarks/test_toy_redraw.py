"""benchmarks/toy_redraw.py: a redraw changes only its variant's setting, links (never writes) the source's earlier
rounds, and its table compares round T with the same source's round T-1 (the draws themselves take minutes)."""

import json
import sys
from pathlib import Path

import pytest

from evoquality.training.config import make_config
from evoquality.training.rounds import EvolveSettings, _check_or_write_state, round_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import toy_redraw  # noqa: E402


@pytest.fixture
def source(tmp_path):
    run = tmp_path / "lr-halving-seed1"
    settings = EvolveSettings(out=str(run), model="base", images="pool.jsonl", rounds=3, lr_round_factor=0.5,
                              label={"votes": 8, "pairs": 0}, round2_variants=10, round2_same_content_pairs=480,
                              train=make_config(None, {"seed": 1, "learning_rate": 1e-4}))
    _check_or_write_state(run, settings, is_main=True)
    for t in (1, 2, 3):
        round_dir(run, t).mkdir()
        (round_dir(run, t) / "DONE").write_text("{}\n")
    return run, settings


@pytest.mark.parametrize("variant, changed", [
    ("replicate", {"train": {"seed": 101}}),
    ("k32", {"label": {"votes": 32}}),
    ("unparsed0", {"train": {"unparsed_reward": 0.0}}),
    ("ref-initial", {"train": {"ref_model": "initial"}}),
    ("soft", {"label": {"label": "soft"}}),
])
def test_a_redraw_changes_its_variant_only_and_links_earlier_rounds(source, tmp_path, variant, changed):
    run, original = source
    out = tmp_path / "out" / f"{variant}-{run.name}"
    redrawn = toy_redraw.redraw_settings(run, out, variant, 3)
    assert redrawn.out == str(out) and redrawn.rounds == 3
    before, after = original.fingerprint(), redrawn.fingerprint()
    for part, fields in changed.items():
        for name, value in fields.items():
            assert after[part][name] == value != before[part].get(name)
            if name in before[part]:
                after[part][name] = before[part][name]
            else:  # a field the source left at its default
                del after[part][name]
    assert after == before  # nothing else differs: the source's model, pool, round-2 pairs, lr factor
    for t in (1, 2):
        assert round_dir(out, t).is_symlink() and round_dir(out, t).resolve() == round_dir(run, t).resolve()
    assert not round_dir(out, 3).exists()  # round 3 is the redraw's own


def test_table_compares_round_t_with_the_same_sources_round_t_minus_1():
    draws = {
        "source/s1/round 2": {"srcc": 0.40}, "source/s2/round 2": {"srcc": 0.30},
        "source/s1/round 3": {"srcc": 0.38, "pseudo_acc": 0.66}, "source/s2/round 3": {"srcc": 0.33, "pseudo_acc": 0.64},
        "k32/s1/round 3": {"srcc": 0.45, "pseudo_acc": 0.70}, "k32/s2/round 3": {"srcc": 0.31, "pseudo_acc": 0.69},
        "replicate/s1/round 3": {"srcc": 0.41, "pseudo_acc": 0.65},  # s2 not drawn yet
    }
    rows = {r["variant"]: r for r in toy_redraw.table_rows(draws, ["d/s1", "d/s2"], 3, ["source", "k32", "replicate"])}
    assert rows["source"]["gains"] == pytest.approx([-0.02, 0.03])
    assert rows["k32"]["gains"] == pytest.approx([0.05, 0.01]) and rows["k32"]["median"] == pytest.approx(0.03)
    assert rows["replicate"]["gains"] == pytest.approx([0.01]) and rows["replicate"]["label_acc"] == [0.65]
    text = toy_redraw.markdown(list(rows.values()), {"round": 3, "device": "cpu", "commit": "abc", "samples": 32})
    assert "| k32 | +0.050, +0.010 | +0.030 | +0.030 | 0.700, 0.690 |" in text


def test_refuses_round_one_and_unfinished_runs(source, tmp_path, capsys):
    run, _ = source
    with pytest.raises(SystemExit):
        toy_redraw.main(["--runs", str(run), "--round", "1", "--out", str(tmp_path / "o")])
    assert "--round must be >= 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        toy_redraw.main(["--runs", str(run), "--round", "4", "--out", str(tmp_path / "o")])
    assert "has no finished round 4" in capsys.readouterr().err
    assert json.loads((run / "evolve.json").read_text())["settings"]["label"]["votes"] == 8  # the source: untouched
