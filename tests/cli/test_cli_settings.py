"""The operator's side of settings: flags from the table, precedence through the real CLI
parser for every kind of setting, exit code 2 for bad values, --init, the container
default, the exposure warning, and how `claude …` is split off."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pytest

from proxy.cli import main as cli
from proxy.server.app import ProxyApp
from proxy.config import (
    CONTAINER_OLLAMA_URL,
    SETTINGS,
    Setting,
    config_file_defaults,
    describe_source,
    is_loopback_host,
    load_settings,
    running_in_container,
)

BOOL_PARSE = next(s for s in SETTINGS if s.name == "quiet").parse


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """An empty working folder and no PROXY_* / OLLAMA_HOST from the developer's shell."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in __import__("os").environ if n.startswith("PROXY_") or n == "OLLAMA_HOST"]:
        monkeypatch.delenv(name)
    return tmp_path


def resolve(argv: list[str], environ: dict[str, str], file: dict | None, folder: Path):
    """Parse ``argv`` with the real parser, then resolve as main() does."""
    if file is not None:
        (folder / "proxy.config.json").write_text(json.dumps(file), encoding="utf-8")
    args = cli.build_parser().parse_args(argv)
    return load_settings(cli.flag_values(args), environ=environ, in_container=False)


# (setting, argv for the flag, env var, env value, file value, (from flag, env, file), default)
KINDS = {
    "string": ("default_model", ["--default-model", "flag:1b"], "PROXY_DEFAULT_MODEL", "env:2b", "file:3b",
               ("flag:1b", "env:2b", "file:3b"), "qwen3:8b"),
    "optional-string": ("api_key", ["--api-key", "flag-key"], "PROXY_API_KEY", "env-key", "file-key",
                        ("flag-key", "env-key", "file-key"), None),
    "int": ("port", ["--port", "4001"], "PROXY_PORT", "4002", 4003, (4001, 4002, 4003), 3000),
    "float": ("ping_interval", ["--ping-interval", "1.5"], "PROXY_PING_INTERVAL", "2.5", 3.5, (1.5, 2.5, 3.5), 10.0),
    "bool": ("quiet", ["--quiet"], "PROXY_QUIET", "false", True, (True, False, True), False),
    "bool-negated": ("quiet", ["--no-quiet"], "PROXY_QUIET", "yes", False, (False, True, False), False),
    "map": ("model_map", ["--model-map", "haiku=flag:1b", "--model-map", "opus=flag:9b"], "PROXY_MODEL_MAP",
            '{"haiku": "env:2b"}', {"haiku": "file:3b"},
            ({"haiku": "flag:1b", "opus": "flag:9b"}, {"haiku": "env:2b"}, {"haiku": "file:3b"}), {}),
    "map-json-flag": ("model_map", ["--model-map", '{"sonnet": "flag:1b"}'], "PROXY_MODEL_MAP", "sonnet=env:2b",
                      {"sonnet": "file:3b"}, ({"sonnet": "flag:1b"}, {"sonnet": "env:2b"}, {"sonnet": "file:3b"}), {}),
    "path": ("log_file", ["--log-file", "/var/log/flag.log"], "PROXY_LOG_FILE", "/var/log/env.log", "/var/log/file.log",
             ("/var/log/flag.log", "/var/log/env.log", "/var/log/file.log"), None),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layers", ["flag+env+file", "env+file", "file", "none"])
def test_precedence_through_the_cli_for_every_kind(in_tmp, kind, layers):
    name, argv, env_var, env_value, file_value, (from_flag, from_env, from_file), default = KINDS[kind]
    settings = resolve(
        argv if "flag" in layers else [],
        {env_var: env_value} if "env" in layers else {},
        {name: file_value} if "file" in layers else None,
        in_tmp,
    )
    expected, source = {
        "flag+env+file": (from_flag, "flag"), "env+file": (from_env, "env"),
        "file": (from_file, "file"), "none": (default, "default"),
    }[layers]
    assert getattr(settings, name) == expected
    assert type(getattr(settings, name)) is type(expected)
    assert settings.sources[name] == source


def test_settings_flags_also_work_after_the_subcommand(in_tmp):
    settings = resolve(["--port", "4100", "serve", "--quiet", "--default-model", "m:1b"], {}, None, in_tmp)
    assert (settings.port, settings.quiet, settings.default_model) == (4100, True, "m:1b")
    # a value given before the subcommand is not reset by the subcommand's own copy of the flag
    assert resolve(["--port", "4100", "doctor"], {}, None, in_tmp).port == 4100


def test_every_row_of_the_table_has_a_flag():
    parser = cli.build_parser()
    options = {option for action in parser._actions for option in action.option_strings}
    for setting in SETTINGS:
        assert setting.flag in options, setting.name
        if setting.is_bool:
            assert "--no-" + setting.flag[2:] in options


def test_yes_no_rows_get_both_flags_generically():
    # a default-true row: --no-x turns it off
    table = (*SETTINGS, Setting("example_toggle", True, BOOL_PARSE, "a yes/no setting"))
    parser = cli.build_parser(table)
    assert parser.parse_args(["--no-example-toggle"]).example_toggle is False
    assert parser.parse_args(["--example-toggle"]).example_toggle is True
    assert parser.parse_args([]).example_toggle is None  # not given: env, file or default decide
    assert parser.parse_args(["--no-sequential-tools"]).sequential_tools is False  # a real row
    with pytest.raises(SystemExit):
        parser.parse_args(["--example-toggle", "yes"])


# -- invalid values: exit code 2, naming where, which key and what was expected ----------


@pytest.mark.parametrize(
    ("argv", "environ", "file", "words"),
    [
        (["--port", "x"], {}, None, ["--port", "'x'", "expected a whole number"]),
        (["--port", "70000"], {}, None, ["--port", "expected a port"]),
        (["--idle-timeout", "soon"], {}, None, ["--idle-timeout", "expected a number"]),
        (["--log-level", "loud"], {}, None, ["--log-level", "expected one of debug"]),
        (["--model-map", "haiku"], {}, None, ["--model-map", "expected claude-name=ollama-model"]),
        ([], {"PROXY_QUIET": "maybe"}, None, ["PROXY_QUIET", "expected true or false"]),
        ([], {"PROXY_OLLAMA_URL": "ftp://x"}, None, ["PROXY_OLLAMA_URL", "expected an http:// or https:// URL"]),
        ([], {"OLLAMA_HOST": "box:99999"}, None, ["OLLAMA_HOST", "expected a port"]),
        ([], {}, {"port": "abc"}, ["proxy.config.json", "key 'port'", "expected a whole number"]),
        ([], {}, {"quiet": "sometimes"}, ["proxy.config.json", "key 'quiet'", "expected true or false"]),
        ([], {}, {"model_map": {"haiku": 3}}, ["proxy.config.json", "key 'model_map'", "expected a JSON object"]),
        ([], {}, {"log_file": 5}, ["proxy.config.json", "key 'log_file'", "expected a string"]),
        ([], {}, {"prot": 3000}, ["proxy.config.json", "unknown key(s) prot"]),
        ([], {}, "{not json", ["proxy.config.json", "not valid JSON"]),
    ],
)
def test_invalid_settings_exit_2_with_a_message_naming_source_key_and_expectation(
    in_tmp, monkeypatch, capsys, argv, environ, file, words
):
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    if file is not None:
        text = file if isinstance(file, str) else json.dumps(file)
        (in_tmp / "proxy.config.json").write_text(text, encoding="utf-8")
    assert cli.main([*argv, "models"]) == 2  # fails before any command runs
    err = capsys.readouterr().err
    for word in words:
        assert word in err


def test_a_missing_config_file_named_by_flag_exits_2(in_tmp, capsys):
    assert cli.main(["--config", str(in_tmp / "nowhere.json"), "models"]) == 2
    assert "nowhere.json: cannot read config file" in capsys.readouterr().err


def test_a_log_file_that_cannot_be_opened_exits_2(in_tmp, capsys):
    (in_tmp / "taken").write_text("a file, not a folder")
    assert cli.main(["--log-file", str(in_tmp / "taken" / "proxy.log"), "--port", "0", "serve"]) == 2
    assert "log_file" in capsys.readouterr().err


# -- --init -------------------------------------------------------------------------------


def test_init_writes_every_key_with_its_default_but_does_not_pin_the_ollama_url(in_tmp, capsys):
    assert cli.main(["--init"]) == 0
    data = json.loads((in_tmp / "proxy.config.json").read_text())
    assert list(data) == [s.name for s in SETTINGS if s.name != "ollama_url"]
    assert data == {k: v for k, v in config_file_defaults().items() if k != "ollama_url"}
    assert data["api_key"] is None and data["quiet"] is False and data["model_map"] == {}
    # and the file it wrote loads to the defaults, every value but the URL from the file
    settings = load_settings(environ={})
    assert {n for n, source in settings.sources.items() if source != "file"} == {"ollama_url"}
    assert {s.name: getattr(settings, s.name) for s in SETTINGS if s.name != "ollama_url"} == data
    out = capsys.readouterr().out
    assert "proxy.config.json" in out and "ollama_url left out" in out
    # so OLLAMA_HOST still decides after --init, as it did before
    after = load_settings(environ={"OLLAMA_HOST": "gpu-box:11500"}, in_container=False)
    assert (after.ollama_url, describe_source(after, "ollama_url")) == ("http://gpu-box:11500", "from OLLAMA_HOST")


def test_init_pins_the_ollama_url_when_it_is_given(in_tmp):
    assert cli.main(["--init", "--ollama-url", "http://gpu-box:11434"]) == 0
    assert json.loads((in_tmp / "proxy.config.json").read_text())["ollama_url"] == "http://gpu-box:11434"
    settings = load_settings(environ={"OLLAMA_HOST": "elsewhere:1"})
    assert (settings.ollama_url, describe_source(settings, "ollama_url")) == (
        "http://gpu-box:11434", "from proxy.config.json")


def test_init_refuses_to_overwrite_without_force(in_tmp, capsys):
    path = in_tmp / "proxy.config.json"
    path.write_text('{"port": 4000}\n')
    assert cli.main(["--init"]) == 1
    assert "--force" in capsys.readouterr().err
    assert path.read_text() == '{"port": 4000}\n'
    assert cli.main(["--init", "--force"]) == 0
    assert json.loads(path.read_text())["port"] == 3000


def test_init_takes_the_flags_given_with_it(in_tmp):
    target = in_tmp / "conf" / "my.json"
    target.parent.mkdir()
    assert cli.main(["--config", str(target), "--init", "--default-model", "qwen3-coder:30b", "--quiet",
                     "--model-map", "haiku=qwen3:4b"]) == 0
    data = json.loads(target.read_text())
    assert data["default_model"] == "qwen3-coder:30b"
    assert data["quiet"] is True
    assert data["model_map"] == {"haiku": "qwen3:4b"}
    assert data["port"] == 3000
    assert cli.main(["--init", "--port", "nope"]) == 2


def test_init_in_a_container_leaves_the_url_to_the_container_default(tmp_path):
    for in_container in (True, False):
        path = tmp_path / f"{in_container}.json"
        cli.write_initial_config(path, {}, force=False, in_container=in_container)
        assert "ollama_url" not in json.loads(path.read_text())
        settings = load_settings(environ={}, config_path=path, in_container=in_container)
        expected = CONTAINER_OLLAMA_URL if in_container else "http://127.0.0.1:11434"
        origin = "the container default" if in_container else "the default"
        assert (settings.ollama_url, describe_source(settings, "ollama_url")) == (expected, origin)


# -- container detection ------------------------------------------------------------------


def test_container_markers(tmp_path):
    marker = tmp_path / ".dockerenv"
    assert running_in_container((str(marker),)) is False
    marker.touch()
    assert running_in_container((str(tmp_path / "absent"), str(marker))) is True


def test_in_a_container_the_default_ollama_url_is_the_host(in_tmp):
    settings = load_settings(environ={}, in_container=True)
    assert settings.ollama_url == CONTAINER_OLLAMA_URL
    assert settings.sources["ollama_url"] == "default"
    assert load_settings(environ={}, in_container=False).ollama_url == "http://127.0.0.1:11434"
    # anything the operator says still wins
    assert load_settings(environ={"OLLAMA_HOST": "gpu:11434"}, in_container=True).ollama_url == "http://gpu:11434"
    assert load_settings({"ollama_url": "http://x:1"}, environ={}, in_container=True).ollama_url == "http://x:1"


# -- exposure warning -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("proxy.example", False)],
)
def test_is_loopback_host(host, loopback):
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("served_at", "api_key", "warned"),
    [("0.0.0.0", None, True), ("192.168.1.5", None, True), ("0.0.0.0", "k", False), ("127.0.0.1", None, False)],
)
async def test_serving_beyond_loopback_without_a_key_warns_once(caplog, served_at, api_key, warned):
    # The host setting says loopback; the address the requests arrive at (the ASGI scope's
    # server, as under plain `hypercorn --bind 0.0.0.0:3000`) decides.
    settings = load_settings({"host": "127.0.0.1", "api_key": api_key}, environ={}, read_config_file=False)
    app = ProxyApp(settings, console_log=False)
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [(b"host", b"127.0.0.1:3000")],
             "server": (served_at, 3000), "query_string": b""}
    with caplog.at_level(logging.WARNING, logger="proxy"):
        await app.startup()
        for _ in range(3):
            await app(scope, receive, send)
        await app.shutdown()
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [200] * 3
    messages = [r.getMessage() for r in caplog.records if "without an API key" in r.getMessage()]
    assert len(messages) == (1 if warned else 0)
    if warned:
        assert served_at in messages[0]


# -- splitting off `claude …` -------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "ours", "claude"),
    [
        (["--port", "3000"], ["--port", "3000"], None),
        (["doctor", "--json"], ["doctor", "--json"], None),
        (["claude"], ["claude"], {"claude_bin": None, "claude_args": []}),
        (["claude", "-p", "hi", "--model", "x"], ["claude"], {"claude_bin": None, "claude_args": ["-p", "hi", "--model", "x"]}),
        (["--default-model", "claude", "claude", "--help"], ["--default-model", "claude", "claude"],
         {"claude_bin": None, "claude_args": ["--help"]}),
        (["--quiet", "claude", "--claude-bin", "/opt/cc", "--", "--claude-bin", "x"], ["--quiet", "claude"],
         {"claude_bin": "/opt/cc", "claude_args": ["--claude-bin", "x"]}),
        (["--port=4000", "claude", "--claude-bin=/opt/cc", "-c"], ["--port=4000", "claude"],
         {"claude_bin": "/opt/cc", "claude_args": ["-c"]}),
        (["pull", "claude"], ["pull", "claude"], None),
    ],
)
def test_split_claude_args(argv, ours, claude):
    assert cli.split_claude_args(argv) == (ours, claude)


def test_claude_args_never_reach_argparse():
    ours, _ = cli.split_claude_args(["--port", "1", "claude", "--dangerously-skip-permissions", "-p", "x"])
    args = cli.build_parser().parse_args(ours)
    assert isinstance(args, argparse.Namespace) and args.command == "claude"
