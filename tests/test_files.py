"""The one atomic writer and the one JSONL reader (`evoquality._files`)."""

import os
import stat
from pathlib import Path

import pytest

from evoquality._files import JsonlError, atomic_write, read_jsonl


# -- atomic_write ----------------------------------------------------------------------------------------------------
def test_atomic_write_fsyncs_the_file_then_renames_then_fsyncs_the_directory(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(src, dst):
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "state.json"
    atomic_write(target, '{"a": 1}\n')
    assert events == ["fsync file", "replace", "fsync dir"]
    assert target.read_text() == '{"a": 1}\n'
    assert os.listdir(tmp_path) == ["state.json"]


def test_atomic_write_takes_bytes_and_writes_str_as_utf8(tmp_path):
    atomic_write(tmp_path / "a.png", b"\x89PNG\x00")
    atomic_write(tmp_path / "b.txt", "ü\u2028")
    assert (tmp_path / "a.png").read_bytes() == b"\x89PNG\x00"
    assert (tmp_path / "b.txt").read_bytes() == "ü\u2028".encode()


def test_a_crash_before_the_rename_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "labels.jsonl"
    target.write_text("old\n")

    def crash(src, dst):
        raise OSError("killed between write and rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="killed"):
        atomic_write(target, "new\n")
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["labels.jsonl"]


# -- read_jsonl ------------------------------------------------------------------------------------------------------
def test_blank_lines_are_skipped_and_numbers_are_file_lines(tmp_path):
    p = tmp_path / "rows.jsonl"
    p.write_bytes(b'{"a": 1}\n\n  \r\n{"a": 2}\r\n[3]')
    assert list(read_jsonl(p)) == [(1, {"a": 1}), (4, {"a": 2}), (5, [3])]


def test_a_malformed_line_names_file_and_line(tmp_path):
    p = tmp_path / "rows.jsonl"
    p.write_text('{"a": 1}\n\n{"a": \n')
    with pytest.raises(JsonlError, match=r"rows\.jsonl:3: not JSON \(Expecting value\)"):
        list(read_jsonl(p))
    assert issubclass(JsonlError, ValueError)


def test_the_caller_chooses_the_error(tmp_path):
    class ManifestError(ValueError):
        pass

    p = tmp_path / "m.jsonl"
    p.write_text("nope\n")
    with pytest.raises(ManifestError, match=r"m\.jsonl:1: not JSON"):
        list(read_jsonl(p, error=ManifestError))
    with pytest.raises(ValueError, match=r"^images manifest .*m\.jsonl:1: not JSON"):
        list(read_jsonl(p, error=lambda msg: ValueError(f"images manifest {msg}")))


def test_invalid_utf8_is_an_error_naming_the_line(tmp_path):
    p = tmp_path / "rows.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a": "\xff"}\n')
    with pytest.raises(JsonlError, match=r"rows\.jsonl:2: not JSON \(not UTF-8"):
        list(read_jsonl(p))


def test_lines_split_on_newline_only_and_a_bom_is_dropped(tmp_path):
    p = tmp_path / "rows.jsonl"
    # ensure_ascii=False writes U+2028 raw; str.splitlines would cut the record there.
    p.write_bytes(b"\xef\xbb\xbf" + '{"t": "a\u2028b\x85c"}\n'.encode())
    assert list(read_jsonl(p)) == [(1, {"t": "a\u2028b\x85c"})]


@pytest.mark.parametrize("tail", [b'{"item": 2, "answ', b'{"item": 2}', '{"t": "ü'.encode()[:-1]])
def test_torn_tail_is_ignored_only_when_asked(tmp_path, tail):
    # A kill mid-append leaves bytes after the last newline, JSON or not, possibly cut inside a UTF-8 character.
    p = tmp_path / "rank-00000.jsonl"
    p.write_bytes(b'{"item": 0}\n{"item": 1}\n' + tail)
    assert [row["item"] for _, row in read_jsonl(p, torn_tail_ok=True)] == [0, 1]
    if tail == b'{"item": 2}':
        assert [row["item"] for _, row in read_jsonl(p)] == [0, 1, 2]
    else:
        with pytest.raises(JsonlError, match=r"rank-00000\.jsonl:3: not JSON"):
            list(read_jsonl(p))


def test_torn_tail_tolerance_still_refuses_damage_before_the_tail(tmp_path):
    p = tmp_path / "rank-00000.jsonl"
    p.write_text('{"item": 0}\nGARBAGE\n{"item": 1}\n{"ite')
    with pytest.raises(JsonlError, match=r"rank-00000\.jsonl:2: not JSON"):
        list(read_jsonl(p, torn_tail_ok=True))


def test_a_missing_file_fails_when_called_not_when_iterated(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_jsonl(tmp_path / "absent.jsonl")
