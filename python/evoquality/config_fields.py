"""Config dataclasses and their command-line flags: one field helper and one generator.

A config's fields are declared once, with `option(default, help, ...)`; `add_dataclass_arguments` turns them into
argparse flags and `values_from_args` reads the given ones back. The default lives in the field only: a flag shows it
in its help and either carries it (a command whose config is the flags alone) or leaves it None (a command where a
file or a preset may set the value first, so an unset flag must not override it).

It sits at the bottom of the import layering so that every config, at any layer, can use it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Optional, Union, get_args, get_origin, get_type_hints


def option(default: Any = dataclasses.MISSING, help: str = "", choices: Optional[Iterable] = None, *,
           flag: Optional[str] = None, cli: bool = True, default_factory: Any = dataclasses.MISSING):
    """A dataclass field whose `help` is also its flag's help (TRL's convention).

    choices: the allowed values (checked by the config's validation and by argparse). flag: the option string in the
    config's own command, when it is not ``--field-name``. cli: False keeps the field out of the flags (file only).
    """
    metadata: dict[str, Any] = {"help": help}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if flag is not None:
        metadata["flag"] = flag
    if not cli:
        metadata["cli"] = False
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


def cli_fields(cls, exclude: Iterable[str] = ()) -> list[dataclasses.Field]:
    """The fields of `cls` that are flags, in declaration order."""
    skip = set(exclude)
    return [f for f in dataclasses.fields(cls) if f.metadata.get("cli", True) and f.name not in skip]


def field_default(f: dataclasses.Field) -> Any:
    """A field's default (its factory's value for mutable ones); MISSING when it has none."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _value_type(hint) -> tuple[Any, bool]:
    """(the type a flag converts to, whether None is allowed) of a field's type hint."""
    if get_origin(hint) is Union:
        return next(a for a in get_args(hint) if a is not type(None)), True
    return hint, False


def add_dataclass_arguments(parser, cls, *, prefix: str = "", dest_prefix: str = "", exclude: Iterable[str] = (),
                            unset_none: bool = False, strings: bool = False) -> None:
    """One flag per field of the dataclass `cls`, on `parser` (a parser or an argument group).

    prefix / dest_prefix: put before every flag name / dest (``--label-votes`` -> ``label_votes``). With a prefix the
    flag is always ``--{prefix}{field-name}``, so flags and config-file keys match one to one.
    unset_none: an unset flag is None (a file or a preset may set the field); else it carries the field's default.
    strings: values stay text and the config's own coercion converts them, so a flag reads like a file value
    (``--use-vllm true``, ``--bf16 auto``); else bools are ``--x/--no-x`` and numbers are converted by argparse.
    Every help ends with the field's default; a dict field is a repeated ``KEY=VALUE`` flag.
    """
    hints = get_type_hints(cls)
    for f in cli_fields(cls, exclude):
        flag = f.metadata.get("flag") if not prefix else None
        flag = flag or "--" + prefix + f.name.replace("_", "-")
        dest = dest_prefix + f.name
        help_text = f.metadata.get("help", "").replace("%", "%%")  # argparse %-formats help strings
        kind, nullable = _value_type(hints[f.name])
        default = field_default(f)
        required = default is dataclasses.MISSING and not unset_none
        shown = None if required or kind is dict else f" (default: {default})".replace("%", "%%")
        if kind is dict:
            action = parser.add_argument(flag, dest=dest, action="append", default=None if unset_none else [],
                                         metavar="KEY=VALUE", help=help_text)
        elif strings:
            if kind is bool:  # true/false as text (and none/auto for an Optional[bool]), as in a file
                action = parser.add_argument(flag, dest=dest, default=None, metavar="BOOL", help=help_text)
            else:
                action = parser.add_argument(flag, dest=dest, default=None, type=str, metavar=kind.__name__.upper(),
                                             choices=f.metadata.get("choices"), help=help_text)
        elif kind is bool:
            action = parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction,
                                         default=None if unset_none else default, help=help_text)
        else:
            action = parser.add_argument(flag, dest=dest, type=kind, required=required,
                                         choices=f.metadata.get("choices"),
                                         default=None if unset_none or required else default, help=help_text)
        if shown and "%(default)" not in (action.help or ""):  # BooleanOptionalAction may show it already
            action.help = (action.help or "") + shown


def parse_key_value(name: str, text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> (key, value). VALUE is read as JSON where it parses (``false``, ``4096``, ``0.5``,
    ``{"image": 2}``), else kept as a string (``fp8``); dashes in KEY become underscores. `name`: the field, for
    the error message."""
    key, sep, value = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key:
        raise ValueError(f"{name}: expected KEY=VALUE, got {text!r}")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key, parsed


def values_from_args(args: argparse.Namespace, cls, *, dest_prefix: str = "", exclude: Iterable[str] = ()) -> dict:
    """The fields whose flags (from `add_dataclass_arguments`) hold a value, by field name; repeated ``KEY=VALUE``
    flags become a dict. Unset (None) flags are left out, so the field's default, a file or a preset decides."""
    hints = get_type_hints(cls)
    out = {}
    for f in cli_fields(cls, exclude):
        value = getattr(args, dest_prefix + f.name, None)
        if value is None:
            continue
        if _value_type(hints[f.name])[0] is dict:
            pairs: dict[str, Any] = {}
            for text in value:
                key, parsed = parse_key_value(f.name, text)
                if key in pairs:
                    raise ValueError(f"{f.name}: {key!r} is given twice")
                pairs[key] = parsed
            value = pairs
        out[f.name] = value
    return out


def preset(cls, **values) -> Mapping[str, Any]:
    """A read-only partial config of the dataclass `cls` (the toy world's presets): every key must be a field and
    every value of the field's type, checked when the preset is defined instead of when a run reads it."""
    hints = get_type_hints(cls)
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ValueError(f"{cls.__name__} has no fields {unknown}")
    for name, value in values.items():
        kind, nullable = _value_type(hints[name])
        fits = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
        fits = fits or (kind is float and isinstance(value, int) and not isinstance(value, bool))
        if not (fits or (nullable and value is None)):
            raise ValueError(f"{cls.__name__}.{name} must be {kind.__name__}, got {value!r}")
    return MappingProxyType(dict(values))
