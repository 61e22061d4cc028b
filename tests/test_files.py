"""The one atomic writer and the one JSONL reader (`evoquality._files`), and a scan that keeps them the only ones."""

import ast
import os
import stat
from pathlib import Path

import pytest

from evoquality import _files
from evoquality._files import JsonlError, atomic_write, read_jsonl

PACKAGE = Path(_files.__file__).parent


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


# -- one of each -----------------------------------------------------------------------------------------------------
# Scanned with `ast`, not text search, so comments, docstrings and str.replace never match, and any spelling of the
# call counts: os.replace / os.rename (or imported bare from os), and the one-argument Path.replace / Path.rename
# (str.replace always takes two arguments). A JSONL loop is json.loads / json.load applied to a line: a name bound by
# an enclosing for loop or comprehension (`for line in f`, `for i, line in enumerate(...)`), possibly stripped,
# decoded or sliced; or json.loads mapped over an iterable. Reading whole JSON documents (`json.loads(path.read_text())`,
# in a loop over paths or not) is not a JSONL reader and stays allowed.
# What the scan cannot see (a helper function that takes the line as a parameter) a reviewer still has to.
# How many each file may hold, so a second one added next to an allowed one still fails.
ALLOWED_RENAMES = {
    "_files.py": 1,  # the one atomic writer
    # Moves a whole checkpoint directory into place once every file in it is written: a directory commit, not a
    # file write, so atomic_write cannot do it.
    "training/stage.py": 1,
}
ALLOWED_JSONL_LOOPS = {"_files.py": 1}  # the one JSONL parser


def _is_json_load(func) -> bool:
    return isinstance(func, ast.Attribute) and func.attr in ("loads", "load") and \
        isinstance(func.value, ast.Name) and func.value.id == "json"


def _line_name(arg):
    """The loop variable a json.loads argument is made of (`line`, `line.strip()`, `raw.decode()`, `line[:-1]`)."""
    while True:
        if isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute) and \
                arg.func.attr in ("strip", "rstrip", "lstrip", "decode"):
            arg = arg.func.value
        elif isinstance(arg, ast.Subscript):
            arg = arg.value
        else:
            return arg.id if isinstance(arg, ast.Name) else None


def _target_names(node) -> set:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


class _Scan(ast.NodeVisitor):
    def __init__(self):
        self.renames, self.jsonl_loops, self._loop_names = [], [], [set()]

    def visit_ImportFrom(self, node):
        if node.module == "os" and any(a.name in ("replace", "rename") for a in node.names):
            self.renames.append(node.lineno)

    def _loop(self, node, targets, body):
        self._loop_names.append(self._loop_names[-1] | set().union(*(_target_names(t) for t in targets)))
        for child in body:
            self.visit(child)
        self._loop_names.pop()

    def visit_For(self, node):
        self.visit(node.iter)
        self._loop(node, [node.target], node.body + node.orelse)

    visit_AsyncFor = visit_For

    def _comprehension(self, node):
        for gen in node.generators:
            self.visit(gen.iter)
        elements = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        self._loop(node, [g.target for g in node.generators], elements + [c for g in node.generators for c in g.ifs])

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _comprehension

    def visit_Call(self, node):
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in ("replace", "rename"):
            if isinstance(func.value, ast.Name) and func.value.id == "os":
                self.renames.append(node.lineno)
            elif len(node.args) == 1 and not node.keywords:
                self.renames.append(node.lineno)
        if _is_json_load(func) and node.args and _line_name(node.args[0]) in self._loop_names[-1]:
            self.jsonl_loops.append(node.lineno)
        if isinstance(func, ast.Name) and func.id == "map" and node.args and _is_json_load(node.args[0]):
            self.jsonl_loops.append(node.lineno)
        self.generic_visit(node)


def _scan(source: str) -> _Scan:
    scan = _Scan()
    scan.visit(ast.parse(source))
    return scan


def test_the_scan_sees_the_spellings_it_claims_to():
    seen = _scan(
        "import json, os\nfrom os import replace\n"
        "os.replace(a, b)\ntmp.replace(dst)\np.rename(q)\n"
        "rows = [json.loads(line) for line in f if line.strip()]\n"
        "for i, line in enumerate(f):\n    x = json.loads(line.strip())\n"
        "rows = list(map(json.loads, f))\n"
        "for raw in data.split(b'\\n')[:-1]:\n    json.loads(raw.decode()[1:])\n"
    )
    assert seen.renames == [2, 3, 4, 5] and seen.jsonl_loops == [6, 8, 9, 11]
    quiet = _scan("import json, dataclasses\ns.replace('a', 'b')\ndataclasses.replace(c, x=1)\n"
                  "cfg = json.loads(path.read_text())\nfor p in paths:\n    d = json.loads(p.read_text())\n")
    assert quiet.renames == [] and quiet.jsonl_loops == []


def test_no_second_atomic_writer_or_jsonl_reader_in_the_package():
    renames, loops = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        scan = _scan(path.read_text(encoding="utf-8"))
        if len(scan.renames) > ALLOWED_RENAMES.get(rel, 0):
            renames += [f"{rel}:{n}" for n in scan.renames]
        if len(scan.jsonl_loops) > ALLOWED_JSONL_LOOPS.get(rel, 0):
            loops += [f"{rel}:{n}" for n in scan.jsonl_loops]
    assert renames == [], f"write files with evoquality._files.atomic_write instead: {renames}"
    assert loops == [], f"read JSONL with evoquality._files.read_jsonl instead: {loops}"
