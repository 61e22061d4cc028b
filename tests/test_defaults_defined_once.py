"""Every default has one definition: the field of its config dataclass.

The config classes are enumerated, and so are the flags of every command parser: a flag that sets a config field
must be None when unset (a file or preset may set the field first) or carry exactly the field's default, and its
help must show that default and start with the field's own help (the generator's flag). The source is scanned as
well, so that no module writes a default down a second time: no hand-written flag of a field the command generates,
no flag of a config field with a literal default, no scoring parameter with a literal default, no gamma / eps
literal beside the ops' constants. docs/method.md's defaults table, which restates them for readers, must agree.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import re
from pathlib import Path

import pytest

from evoquality.cli import COMMANDS
from evoquality.commands import controls, evolve
from evoquality.config_fields import cli_fields, field_default
from evoquality.evaluation.scorers import ScoreSettings
from evoquality.labelling.config import LabelConfig
from evoquality.training.config import TrainConfig
from evoquality.training.rounds import EvolveSettings
from test_import_graph import module_files  # tests/ is on sys.path

# The configs behind each command's flags: (config class, dest prefix, fields deliberately not flags there).
BACKING = {
    "label": [(LabelConfig, "", ())],
    "train": [(TrainConfig, "", ())],
    "evolve": [(EvolveSettings, "", ("out", "model", "images", "train", "label")),  # per-run, or whole configs
               (LabelConfig, "label_", evolve._PER_ROUND),
               (TrainConfig, "", ())],
    "score": [(ScoreSettings, "", ())],
    "eval": [(ScoreSettings, "", ("mode",))],  # the protocol scores greedily and with the mean, not one of them
}
CONFIGS = (TrainConfig, LabelConfig, EvolveSettings, ScoreSettings)


def _parser(command: str) -> argparse.ArgumentParser:
    """The command's parser, as `evoquality.cli.main` builds it."""
    module = next(m for name, m, _ in COMMANDS if name == command)
    parser = argparse.ArgumentParser(prog=f"evoquality {command}")
    module.add_arguments(parser)
    return parser


def _flags(parser: argparse.ArgumentParser, cls, prefix: str) -> dict:
    """field name -> the action of `parser` that sets that field of `cls`."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {a.dest[len(prefix):]: a for a in parser._actions
            if a.option_strings and a.dest.startswith(prefix) and a.dest[len(prefix):] in names}


def _shown(parser: argparse.ArgumentParser, action) -> str:
    return parser._get_formatter()._expand_help(action) if action.help else ""


def test_the_commands_and_configs_are_all_enumerated():
    assert set(BACKING) <= {name for name, _, _ in COMMANDS}
    assert {cls for backing in BACKING.values() for cls, _, _ in backing} == set(CONFIGS)


@pytest.mark.parametrize("command", sorted(BACKING))
def test_every_field_is_a_flag_with_the_fields_default(command):
    parser = _parser(command)
    for cls, prefix, left_out in BACKING[command]:
        flags = {name: a for name, a in _flags(parser, cls, prefix).items() if name not in left_out}
        expected = {f.name for f in cli_fields(cls, left_out)}
        assert set(flags) == expected, f"{command}: flags of {cls.__name__} differ from its fields"
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for name, action in flags.items():
            default = field_default(fields[name])
            if default is dataclasses.MISSING:  # a required field: nothing to define twice
                continue
            flag = action.option_strings[0]
            # The generator's flag: its help is the field's own (a hand-written flag would define it a second time).
            own = fields[name].metadata.get("help", "").replace("%", "%%")
            assert own and (action.help or "").startswith(own), (
                f"{command} {flag}: help {action.help!r} is not {cls.__name__}.{name}'s own ({own!r})")
            unset = [] if isinstance(default, dict) else default  # a dict field is a list of KEY=VALUE texts
            assert action.default is None or action.default == unset, (
                f"{command} {flag}: argparse default {action.default!r}, but {cls.__name__}.{name} is {default!r}")
            shown = re.findall(r"\(default: ([^;)]*)[;)]", _shown(parser, action))
            if isinstance(default, dict):
                assert not shown, f"{command} {flag}: help shows a default {shown}"
            else:  # the last one: a help may say in words what an unset value means before it
                assert shown[-1:] == [str(default)], (
                    f"{command} {flag}: help shows default {shown}, but {cls.__name__}.{name} is {default!r}")


METHOD_MD = Path(__file__).resolve().parents[1] / "docs" / "method.md"


def _docs_defaults(text: str) -> dict:
    """docs/method.md "Defaults and where they are set": {config class name: {flag: the default's first word}}. A
    table belongs to the config its heading names (``Stage 1 (`LabelConfig`, `labelling/config.py`; ...``)."""
    tables, current = {}, None
    section = text.split("## Defaults and where they are set", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        heading = re.match(r"^\w[^|]*\(`(\w+)`, `[\w/]+\.py`", line)
        if heading:
            current = tables.setdefault(heading.group(1), {})
        row = re.match(r"^\| `(--[a-z0-9-]+)`[^|]*\| *`?([^`|, ]+(?:,\d{3})*)", line)  # "20,000" is one word
        if row and current is not None:
            current[row.group(1)] = row.group(2)
    return tables


def _same(written: str, default) -> bool:
    """A default as the docs write it ("20,000", "3e-7", "false", "`hard`", "unset" for None) is the field's value."""
    if default is None:
        return written == "unset"
    if isinstance(default, bool):
        return written.lower() == str(default).lower()
    if isinstance(default, (int, float)):
        return float(written.replace(",", "")) == default
    return written == str(default)


def _docs_mismatches(tables: dict) -> list[str]:
    found = []
    for cls in CONFIGS:
        flags = {f.metadata.get("flag") or "--" + f.name.replace("_", "-"): f for f in dataclasses.fields(cls)}
        for flag, written in tables.get(cls.__name__, {}).items():
            if flag not in flags:
                found.append(f"{cls.__name__}: {flag} is no field")
            elif not _same(written, field_default(flags[flag])):
                found.append(f"{cls.__name__}: {flag} is {written} in the docs, {field_default(flags[flag])!r} in the "
                             "field")
    return found


def test_the_method_docs_defaults_table_is_the_fields_defaults():
    text = METHOD_MD.read_text()
    tables = _docs_defaults(text)
    assert set(tables) == {"LabelConfig", "TrainConfig", "EvolveSettings"}, f"tables found: {sorted(tables)}"
    assert sum(map(len, tables.values())) >= 30  # the table was read, not skipped
    found = _docs_mismatches(tables)
    assert not found, "docs/method.md's defaults table differs from the code:\n" + "\n".join(found)
    # ... and the comparison sees a wrong value, in any of the tables' spellings
    for row, wrong in (("| `--votes` (K) | 32 |", "| `--votes` (K) | 16 |"),
                       ("| `--round2-same-content-pairs` | 20,000 |", "| `--round2-same-content-pairs` | 2,000 |"),
                       ("| `--use-bias-correction-kl` | false", "| `--use-bias-correction-kl` | true"),
                       ("| `--order` | `balanced`", "| `--order` | `random`")):
        assert row in text, row
        assert len(_docs_mismatches(_docs_defaults(text.replace(row, wrong)))) == 1, wrong


def test_the_controls_entry_point_has_evolves_flags(monkeypatch):
    """`python -m evoquality.toy.controls` builds on evolve's flags: the same actions, so the same defaults."""
    seen = {}

    def capture(self, args=None, namespace=None):
        seen["parser"] = self
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(SystemExit):
        controls.main([])
    theirs = {a.dest: (a.default, a.help) for a in seen["parser"]._actions}
    ours = {a.dest: (a.default, a.help) for a in _parser("evolve")._actions}
    assert {k: v for k, v in theirs.items() if k not in ("control",)} == ours


# --- the source: no second definition -----------------------------------------------------------------------------

def _literal(node) -> bool:
    """A default written as a literal (a number, a string, a bool), not None and not a name."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    return isinstance(node, ast.Constant) and node.value is not None


def _parameters_with_literal_defaults(tree):
    """(function, parameter, line) for every parameter whose default is a literal."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            positional = a.posonlyargs + a.args
            pairs = list(zip(positional[len(positional) - len(a.defaults):], a.defaults))
            pairs += [(arg, d) for arg, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
            for arg, default in pairs:
                if _literal(default):
                    yield node.name, arg.arg, default.lineno


SCORING_MODULES = ("evoquality.api", "evoquality.evaluation.scorers", "evoquality.evaluation.runner",
                   "evoquality.commands.score", "evoquality.commands.evaluate")
# ScoreSettings' fields, and the names the API gives some of them (compare's votes are sampled answers too).
SCORING_NAMES = {f.name for f in dataclasses.fields(ScoreSettings)} | {"votes", "samples"}


def test_no_scoring_default_is_written_twice():
    modules = module_files()
    found = []
    for name in SCORING_MODULES:
        tree = ast.parse(modules[name].read_text())
        found += [f"{name}:{line} {fn}({param}=...)" for fn, param, line in _parameters_with_literal_defaults(tree)
                  if param in SCORING_NAMES]
    assert not found, "scoring defaults written as literals (use evaluation.scorers.ScoreSettings):\n" + "\n".join(
        found)


def _assignments_of_literals(tree):
    """(name, line) for every `name = literal`, `name: T = literal` or `name: T = option(literal, ...)` (a config
    field), at any depth."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            value = node.value
            if isinstance(value, ast.Call) and value.args:
                value = value.args[0]
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and _literal(value):
                    yield target.id, node.lineno


def test_no_gamma_or_eps_literal_beside_the_ops_constants():
    found = []
    for name, path in module_files().items():
        tree = ast.parse(path.read_text())
        for fn, param, line in _parameters_with_literal_defaults(tree):
            if param in ("gamma", "eps", "adv_eps"):
                found.append(f"{name}:{line} {fn}({param}=...)")
        if name != "evoquality.ops.constants":
            found += [f"{name}:{line} {target} = ..." for target, line in _assignments_of_literals(tree)
                      if target in ("gamma", "eps", "adv_eps", "GAMMA", "EPS_ADV")]
    assert not found, "use evoquality.ops.constants (GAMMA, EPS_ADV):\n" + "\n".join(found)


def _flag_dest(call: ast.Call):
    """The dest an `add_argument` call gives, from dest= or its first long flag; None when not literal."""
    for kw in call.keywords:
        if kw.arg == "dest" and isinstance(kw.value, ast.Constant):
            return kw.value.value
    for arg in call.args:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("--"):
            return arg.value[2:].replace("-", "_")
    return None


def test_no_command_writes_a_config_fields_default_as_a_literal():
    """A hand-written flag of a field must not spell out a default (that would be its second definition)."""
    with_default = {}
    for cls in CONFIGS:
        for f in dataclasses.fields(cls):
            if field_default(f) is not dataclasses.MISSING:
                with_default.setdefault(f.name, []).append(cls.__name__)
    found = []
    for name, path in module_files().items():
        if not name.startswith("evoquality.commands."):
            continue
        command = name.rpartition(".")[2]
        backed = {cls.__name__: prefix for cls, prefix, _ in BACKING.get("eval" if command == "evaluate" else
                                                                         command, [])}
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "add_argument"):
                continue
            dest = _flag_dest(node)
            default = next((kw.value for kw in node.keywords if kw.arg == "default"), None)
            if dest is None or default is None or not _literal(default):
                continue
            owners = [c for c, prefix in backed.items() if dest.startswith(prefix)
                      and c in with_default.get(dest[len(prefix):], [])]
            if owners:
                found.append(f"{name}:{node.lineno} --{dest} default={ast.unparse(default)} (field of {owners})")
    assert not found, "flags that define a config field's default again:\n" + "\n".join(found)


def _hand_written_field_flags(source: str, command: str):
    """(dest, line) of every `add_argument` call in `source` that sets a field which `command`'s config generates
    (BACKING, not left out): such a flag is the field's second definition, whatever its default and help say."""
    generated = [(prefix, {f.name for f in cli_fields(cls, left_out)}) for cls, prefix, left_out in
                 BACKING.get(command, [])]
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "add_argument"):
            dest = _flag_dest(node)
            if dest is not None and any(dest.startswith(prefix) and dest[len(prefix):] in names
                                        for prefix, names in generated):
                yield dest, node.lineno


def test_no_command_writes_a_generated_flag_by_hand():
    found = []
    for name, path in module_files().items():
        if name.startswith("evoquality.commands."):
            command = name.rpartition(".")[2]
            command = "eval" if command == "evaluate" else command
            found += [f"{name}:{line} --{dest}" for dest, line in _hand_written_field_flags(path.read_text(), command)]
    assert not found, "hand-written flags of config fields (use config_fields.add_dataclass_arguments):\n" + "\n".join(
        found)


def test_the_scan_sees_a_planted_duplicate():
    """The scans above catch what they are for: checked on a small source, so a broken walker cannot pass."""
    tree = ast.parse("def create(model, *, temperature: float = 1.0, seed=-1, batch_size=DEFAULTS.batch_size,\n"
                     "           device=None):\n    pass\n")
    assert [(p, line) for _, p, line in _parameters_with_literal_defaults(tree)] == [("temperature", 1), ("seed", 1)]
    call = ast.parse('parser.add_argument("--max-new-tokens", type=int, default=256)').body[0].value
    assert list(_assignments_of_literals(ast.parse("class C:\n    adv_eps: float = option(1e-4, 'h')\n"))) == [
        ("adv_eps", 2)]
    assert _flag_dest(call) == "max_new_tokens"
    # evolve's round flags as they were hand-written before EvolveSettings' fields generated them
    planted = ('parser.add_argument("--rounds", type=int, default=None, help="rounds T (default: 2)")\n'
               'parser.add_argument("--out", type=str, default="evoquality-run")\n'
               'parser.add_argument("--label-votes", type=int, default=None)\n'
               'parser.add_argument("--label-seed", type=int, default=None)\n')
    assert list(_hand_written_field_flags(planted, "evolve")) == [("rounds", 1), ("label_votes", 3)]
