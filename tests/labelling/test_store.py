import json

import pytest

from evoquality.labelling.store import ConfigMismatch, RoundDir, ShardWriter


def test_claim_then_refuse_a_different_configuration(tmp_path):
    rd = RoundDir(tmp_path / "round")
    assert rd.claim({"votes": 32, "seed": 0}) is True
    assert rd.claim({"votes": 32, "seed": 0}) is False
    with pytest.raises(ConfigMismatch, match=r"refusing to mix.*votes: stored 32, requested 16"):
        rd.claim({"votes": 16, "seed": 0})


def test_refuse_a_foreign_non_empty_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ConfigMismatch, match="is not empty and has no config.json"):
        RoundDir(tmp_path).claim({"votes": 1})


def test_torn_tail_is_ignored_then_truncated(tmp_path):
    rd = RoundDir(tmp_path)
    rd.claim({"k": 1})
    with ShardWriter(rd.shard(0)) as w:
        w.append([{"item": 0, "answers": "01"}, {"item": 1, "answers": "11"}])
    # A kill in the middle of the next write leaves half a line.
    with open(rd.shard(0), "a") as f:
        f.write('{"item": 2, "answ')
    assert sorted(rd.read_records()) == [0, 1]
    with ShardWriter(rd.shard(0)) as w:
        w.append([{"item": 2, "answers": "00"}])
    assert rd.read_records()[2]["answers"] == "00"
    assert rd.shard(0).read_text().count("\n") == 3


def test_corrupt_interior_line_is_an_error(tmp_path):
    rd = RoundDir(tmp_path)
    rd.claim({"k": 1})
    rd.shard(0).write_text('{"item": 0}\nGARBAGE\n{"item": 1}\n')
    with pytest.raises(ValueError, match=r"rank-00000\.jsonl:2: not JSON"):
        rd.read_records()


def test_union_of_shards_first_record_wins(tmp_path):
    rd = RoundDir(tmp_path)
    rd.claim({"k": 1})
    with ShardWriter(rd.shard(0)) as w:
        w.append([{"item": 0, "v": "a"}])
    with ShardWriter(rd.shard(3)) as w:
        w.append([{"item": 0, "v": "b"}, {"item": 5, "v": "c"}])
    recs = rd.read_records()
    assert {k: r["v"] for k, r in recs.items()} == {0: "a", 5: "c"}
    assert json.loads(rd.config_file.read_text())["fingerprint"] == {"k": 1}
