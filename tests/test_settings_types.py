"""``Settings`` (a typed dataclass) and ``SETTINGS`` (the table) say the same thing: one
field per row, in the table's order, each typed as the row's default and the row's parser
result really are. mypy trusts the annotations; this test is what makes them true.

``mismatches`` is the check; the last tests feed it a table with a row too many, a field
of the wrong type and a parser of the wrong type, and show that it says so."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, Sequence

import pytest

from proxy.config import SETTINGS, Setting, Settings, load_settings

#: fields of Settings that are not rows of the table
BOOKKEEPING = ("sources", "origins")

#: raw values tried on every row's parser besides the row's own default (as the config
#: file and as an environment variable would give it); each one a parser accepts must come
#: out as the field's type
SAMPLES: tuple[Any, ...] = (
    "", "0", "1", "7", "2.5", "true", "off", "x", "DEBUG", "json", "/tmp/proxy.log",
    "http://gpu-box:11434", "http://a:1=2,http://b:2", "haiku=qwen3:4b", '{"haiku": "qwen3:4b"}',
    "a.example, b.example", '["a", "b"]', ["sonnet=qwen3:14b"], ["http://a:1", "http://b:2=3"],
    {"haiku": "qwen3:4b"}, 3, 2.5, True, None,
)


def conforms(value: Any, hint: Any) -> bool:
    """``value`` is an instance of the annotation ``hint`` (unions, ``X | None``, ``list``,
    ``tuple``, ``dict`` looked into). ``int`` and ``float`` are exact: a bool is not a
    number of seconds, nor 5 a float."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(conforms(item, args[0]) for item in value)
        return len(value) == len(args) and all(map(conforms, value, args))
    if origin is list:
        return isinstance(value, list) and all(conforms(item, args[0]) for item in value)
    if origin is dict:
        return isinstance(value, dict) and all(
            conforms(k, args[0]) and conforms(v, args[1]) for k, v in value.items()
        )
    if origin is not None or hint is Any or not isinstance(hint, type):
        raise TypeError(f"no check for {hint!r}: give the field a concrete type")
    if hint in (int, float):
        return type(value) is hint
    return isinstance(value, hint)


def _env_text(value: Any) -> str:
    """``value`` as a ``PROXY_*`` variable would give it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    return str(value)


def mismatches(settings_class: type, table: Sequence[Setting[Any]]) -> list[str]:
    """What ``settings_class`` and ``table`` disagree on, in words (empty: nothing)."""
    problems: list[str] = []
    if not (dataclasses.is_dataclass(settings_class) and settings_class.__dataclass_params__.frozen):
        problems.append(f"{settings_class.__name__} is not a frozen dataclass")
        return problems
    fields = [f.name for f in dataclasses.fields(settings_class)]
    rows = [s.name for s in table]
    for name in rows:
        if name not in fields:
            problems.append(f"row {name!r} has no field")
    for name in fields:
        if name not in rows and name not in BOOKKEEPING:
            problems.append(f"field {name!r} has no row")
    if not problems and fields != rows + list(BOOKKEEPING):
        problems.append(f"fields are not in the table's order: {fields}")
    hints = typing.get_type_hints(settings_class)
    for name in BOOKKEEPING:
        if hints.get(name) != dict[str, str]:
            problems.append(f"field {name!r} is {hints.get(name)!r}, not dict[str, str]")
    for setting in table:
        hint = hints.get(setting.name)
        if hint is None:
            continue
        try:
            if not conforms(setting.default, hint):
                problems.append(f"{setting.name}: default {setting.default!r} is not {hint}")
        except TypeError as exc:
            problems.append(f"{setting.name}: {exc}")
            continue
        accepted = []
        for sample in (setting.default, _env_text(setting.default), *SAMPLES):
            try:
                value = setting.parse(sample)
            except ValueError:
                continue
            accepted.append(value)
            if not conforms(value, hint):
                problems.append(f"{setting.name}: the parser makes {value!r} of {sample!r}, not {hint}")
        if not any(value is not None for value in accepted):
            problems.append(f"{setting.name}: no sample parses to a value (add one to SAMPLES)")
    return problems


def test_the_settings_dataclass_and_the_table_agree():
    assert mismatches(Settings, SETTINGS) == []


def test_every_field_of_loaded_settings_has_its_type_from_every_source(tmp_path):
    hints = typing.get_type_hints(Settings)
    defaults = load_settings(environ={}, read_config_file=False, in_container=False)
    from_env = load_settings(
        environ={s.env_var: _env_text(s.default) for s in SETTINGS}, read_config_file=False
    )
    path = tmp_path / "proxy.config.json"
    path.write_text(json.dumps({s.name: s.default for s in SETTINGS}))
    from_file = load_settings(environ={}, config_path=path)
    for settings, source in ((defaults, "default"), (from_env, "env"), (from_file, "file")):
        for field in dataclasses.fields(Settings):
            value = getattr(settings, field.name)
            assert conforms(value, hints[field.name]), (source, field.name, value)
        assert set(settings.sources.values()) == {source}


def test_settings_are_frozen():
    settings = load_settings(environ={}, read_config_file=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1
    assert dataclasses.replace(settings, port=1).port == 1


# -- the check fails when the two drift apart -----------------------------------------------

PORT = next(s for s in SETTINGS if s.name == "port")


def _settings_with(**types_by_name: Any) -> type:
    """A copy of Settings with the fields named retyped (None: left out)."""
    hints = typing.get_type_hints(Settings)
    spec = []
    for field in dataclasses.fields(Settings):
        hint = types_by_name.get(field.name, hints[field.name])
        if hint is not None:
            spec.append((field.name, hint, field))
    return dataclasses.make_dataclass("Settings", spec, frozen=True)


def test_a_row_without_a_field_is_found():
    table = (*SETTINGS, Setting("spare_port", 8080, PORT.parse, "a row added without its field"))
    assert mismatches(Settings, table) == ["row 'spare_port' has no field"]


def test_a_field_without_a_row_is_found():
    table = tuple(s for s in SETTINGS if s.name != "quiet")
    assert mismatches(Settings, table) == ["field 'quiet' has no row"]
    assert mismatches(_settings_with(quiet=None), SETTINGS) == ["row 'quiet' has no field"]


def test_fields_out_of_the_table_order_are_found():
    table = (SETTINGS[1], SETTINGS[0], *SETTINGS[2:])
    assert [p.split(":")[0] for p in mismatches(Settings, table)] == ["fields are not in the table's order"]


def test_a_field_of_the_wrong_type_is_found():
    problems = mismatches(_settings_with(port=str), SETTINGS)
    assert problems and all(p.startswith("port: ") for p in problems)
    assert "port: default 3000 is not <class 'str'>" in problems
    # an optional value typed as if never None, a float typed int, a map of the wrong values
    assert any(p.startswith("api_key: default None") for p in mismatches(_settings_with(api_key=str), SETTINGS))
    assert any(p.startswith("body_timeout: default 30.0") for p in mismatches(_settings_with(body_timeout=int), SETTINGS))
    assert any(
        p.startswith("model_map: the parser makes {'haiku': 'qwen3:4b'}")
        for p in mismatches(_settings_with(model_map=dict[str, int]), SETTINGS)
    )
    assert mismatches(_settings_with(port=Any), SETTINGS) == [
        "port: no check for typing.Any: give the field a concrete type"
    ]


def test_a_parser_of_the_wrong_type_is_found():
    table = tuple(
        dataclasses.replace(s, parse=PORT.parse) if s.name == "graceful_timeout" else s for s in SETTINGS
    )
    problems = mismatches(Settings, table)
    assert problems and all(p.startswith("graceful_timeout: the parser makes ") for p in problems)


def test_a_mutable_settings_class_is_found():
    loose = dataclasses.make_dataclass("Settings", [(f.name, Any, f) for f in dataclasses.fields(Settings)])
    assert mismatches(loose, SETTINGS) == ["Settings is not a frozen dataclass"]
