"""Model mapping (proxy/protocol/models.py) and settings (proxy/config.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proxy.config import host_port, load_settings, local_url, ollama_url_from_host
from proxy.errors import ConfigError
from proxy.protocol.models import resolve_model

DEFAULT = "qwen3:8b"


# --- resolve_model ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "model_map", "expected"),
    [
        # an exact key wins, over a tier key too
        ("claude-sonnet-4-5", {"claude-sonnet-4-5": "qwen3-coder:30b", "sonnet": "other"}, "qwen3-coder:30b"),
        ("gpt-4o", {"gpt-4o": "llama3.2:3b"}, "llama3.2:3b"),
        # tier keys match claude-* names containing the word
        ("claude-haiku-4-5", {"haiku": "qwen3:4b", "opus": "big"}, "qwen3:4b"),
        ("claude-3-5-haiku-20241022", {"haiku": "qwen3:4b"}, "qwen3:4b"),
        ("claude-opus-5-5", {"haiku": "qwen3:4b", "opus": "qwen3:32b"}, "qwen3:32b"),
        ("claude-sonnet-4-5-20250929", {"sonnet": "qwen3:14b"}, "qwen3:14b"),
        ("Claude-Opus-4", {"opus": "qwen3:32b"}, "qwen3:32b"),
        # other claude-* names get the default
        ("claude-opus-5-5", {"haiku": "qwen3:4b"}, DEFAULT),
        ("claude-sonnet-4-5", {}, DEFAULT),
        ("claude-future-model", {"haiku": "qwen3:4b", "sonnet": "s", "opus": "o"}, DEFAULT),
        # anything else passes through unchanged
        ("qwen3-coder:30b", {"sonnet": "qwen3:14b"}, "qwen3-coder:30b"),
        ("my-haiku-finetune", {"haiku": "qwen3:4b"}, "my-haiku-finetune"),
        ("hf.co/unsloth/Qwen3-8B-GGUF:Q4_K_M", {}, "hf.co/unsloth/Qwen3-8B-GGUF:Q4_K_M"),
    ],
)
def test_resolve_model(requested, model_map, expected):
    assert resolve_model(requested, model_map, DEFAULT) == expected


# --- load_settings precedence -------------------------------------------------------------


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run in an empty folder, so no developer's ./proxy.config.json is read."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_config(folder: Path, data: dict, name: str = "proxy.config.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# (setting, flag value, env var, env value, file value, expected from flag/env/file, default)
LAYERS = [
    ("default_model", "flag-model:1b", "PROXY_DEFAULT_MODEL", "env-model:2b", "file-model:3b",
     ("flag-model:1b", "env-model:2b", "file-model:3b"), "qwen3:8b"),
    ("port", 4001, "PROXY_PORT", "4002", 4003, (4001, 4002, 4003), 3000),
    ("idle_timeout", 1.5, "PROXY_IDLE_TIMEOUT", "2.5", 3.5, (1.5, 2.5, 3.5), 300.0),
    ("model_map", ["haiku=flag:1b"], "PROXY_MODEL_MAP", '{"haiku": "env:2b"}', {"haiku": "file:3b"},
     ({"haiku": "flag:1b"}, {"haiku": "env:2b"}, {"haiku": "file:3b"}), {}),
]


@pytest.mark.parametrize("row", LAYERS, ids=[row[0] for row in LAYERS])
@pytest.mark.parametrize("layers", ["flag+env+file", "env+file", "file", "none"])
def test_precedence_flag_env_file_default(in_tmp, row, layers):
    name, flag, env_var, env_value, file_value, (from_flag, from_env, from_file), default = row
    overrides = {name: flag} if "flag" in layers else {}
    environ = {env_var: env_value} if "env" in layers else {}
    if "file" in layers:
        write_config(in_tmp, {name: file_value})
    settings = load_settings(overrides, environ=environ)
    expected, source = {
        "flag+env+file": (from_flag, "flag"),
        "env+file": (from_env, "env"),
        "file": (from_file, "file"),
        "none": (default, "default"),
    }[layers]
    assert getattr(settings, name) == expected
    assert type(getattr(settings, name)) is type(expected)
    assert settings.sources[name] == source


def test_a_flag_of_none_means_not_given(in_tmp):
    settings = load_settings({"port": None}, environ={"PROXY_PORT": "4100"})
    assert settings.port == 4100


@pytest.mark.parametrize("how", ["config_path", "PROXY_CONFIG"])
def test_an_explicit_config_file_replaces_the_local_one(in_tmp, how):
    write_config(in_tmp, {"default_model": "local:1b"})
    elsewhere = in_tmp / "conf"
    elsewhere.mkdir()
    path = write_config(elsewhere, {"default_model": "explicit:2b"}, name="my.json")
    if how == "config_path":
        settings = load_settings(environ={}, config_path=path)
    else:
        settings = load_settings(environ={"PROXY_CONFIG": str(path)})
    assert settings.default_model == "explicit:2b"


def test_read_config_file_false_ignores_every_file(in_tmp):
    write_config(in_tmp, {"default_model": "local:1b"})
    assert load_settings(environ={}, read_config_file=False).default_model == "qwen3:8b"


def test_defaults_are_not_shared_between_loads(in_tmp):
    first = load_settings(environ={})
    first.model_map["haiku"] = "mutated"
    assert load_settings(environ={}).model_map == {}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('{"claude-sonnet-4-5": "qwen3:14b", "haiku": "qwen3:4b"}', {"claude-sonnet-4-5": "qwen3:14b", "haiku": "qwen3:4b"}),
        ("sonnet=qwen3:14b,haiku=qwen3:4b", {"sonnet": "qwen3:14b", "haiku": "qwen3:4b"}),
        (" opus = qwen3:32b ", {"opus": "qwen3:32b"}),
        ("", {}),
    ],
)
def test_model_map_from_the_environment(in_tmp, value, expected):
    assert load_settings(environ={"PROXY_MODEL_MAP": value}).model_map == expected


def test_model_map_repeated_flags(in_tmp):
    settings = load_settings({"model_map": ["sonnet=qwen3:14b", "opus=qwen3:32b"]}, environ={})
    assert settings.model_map == {"sonnet": "qwen3:14b", "opus": "qwen3:32b"}


# --- OLLAMA_HOST ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("0.0.0.0:8080", "http://127.0.0.1:8080"),
        ("host:1234", "http://host:1234"),
        ("example.com", "http://example.com:11434"),
        ("http://h", "http://h:80"),
        ("https://h", "https://h:443"),
        ("https://h:8443/ollama/", "https://h:8443/ollama"),
        (":11434", "http://127.0.0.1:11434"),
        ("[::1]:11500", "http://[::1]:11500"),
        ("  10.0.0.5  ", "http://10.0.0.5:11434"),
    ],
)
def test_ollama_url_from_host(host, url):
    assert ollama_url_from_host(host) == url


def test_ollama_host_is_used_when_proxy_ollama_url_is_unset(in_tmp):
    settings = load_settings(environ={"OLLAMA_HOST": "gpu-box:11500"})
    assert settings.ollama_url == "http://gpu-box:11500"
    assert settings.sources["ollama_url"] == "env"


def test_proxy_ollama_url_beats_ollama_host(in_tmp):
    settings = load_settings(environ={"OLLAMA_HOST": "gpu-box:11500", "PROXY_OLLAMA_URL": "http://other:11434/"})
    assert settings.ollama_url == "http://other:11434"


def test_config_file_beats_ollama_host(in_tmp):
    write_config(in_tmp, {"ollama_url": "http://configured:11434"})
    settings = load_settings(environ={"OLLAMA_HOST": "0.0.0.0"})
    assert settings.ollama_url == "http://configured:11434"
    assert settings.sources["ollama_url"] == "file"


def test_blank_ollama_host_is_ignored(in_tmp):
    # in_container=False: the default must not depend on where the tests run
    assert load_settings(environ={"OLLAMA_HOST": "  "}, in_container=False).ollama_url == "http://127.0.0.1:11434"


# --- invalid values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "environ", "file", "names"),
    [
        ({}, {"PROXY_PORT": "three thousand"}, None, ["PROXY_PORT", "three thousand"]),
        ({}, {"PROXY_IDLE_TIMEOUT": "-1"}, None, ["PROXY_IDLE_TIMEOUT"]),
        ({}, {"PROXY_OLLAMA_URL": "ftp://h"}, None, ["PROXY_OLLAMA_URL", "http"]),
        ({}, {"PROXY_MODEL_MAP": "haiku"}, None, ["PROXY_MODEL_MAP", "claude-name=ollama-model"]),
        ({}, {"PROXY_LOG_LEVEL": "loud"}, None, ["PROXY_LOG_LEVEL", "loud"]),
        ({"port": -5}, {}, None, ["--port"]),
        ({"connect_timeout": "soon"}, {}, None, ["--connect-timeout"]),
        ({}, {}, {"port": "x"}, ["proxy.config.json", "'port'"]),
        ({}, {}, {"default_model": 8}, ["proxy.config.json", "'default_model'"]),
        ({}, {}, {"model_map": {"haiku": 4}}, ["proxy.config.json", "'model_map'"]),
        ({}, {}, {"prot": 3000}, ["proxy.config.json", "prot"]),
    ],
)
def test_invalid_values_name_the_source_and_key(in_tmp, overrides, environ, file, names):
    if file is not None:
        write_config(in_tmp, file)
    with pytest.raises(ConfigError) as excinfo:
        load_settings(overrides, environ=environ)
    for name in names:
        assert name in str(excinfo.value)


@pytest.mark.parametrize("host", ["gpu-box:abc", "gpu-box:99999"])
def test_invalid_ollama_host_names_ollama_host(in_tmp, host):
    with pytest.raises(ConfigError, match="OLLAMA_HOST"):
        load_settings(environ={"OLLAMA_HOST": host})


def test_config_file_that_is_not_json(in_tmp):
    (in_tmp / "proxy.config.json").write_text("{port: 3000}", encoding="utf-8")
    with pytest.raises(ConfigError, match="proxy.config.json: not valid JSON"):
        load_settings(environ={})


def test_config_file_that_is_not_an_object(in_tmp):
    write_config(in_tmp, ["port", 3000])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="JSON object"):
        load_settings(environ={})


def test_missing_explicit_config_file(in_tmp):
    with pytest.raises(ConfigError, match="nowhere.json: cannot read config file"):
        load_settings(environ={"PROXY_CONFIG": str(in_tmp / "nowhere.json")})


@pytest.mark.parametrize("host, port, bind, url", [
    ("127.0.0.1", 3000, "127.0.0.1:3000", "http://127.0.0.1:3000"),
    ("0.0.0.0", 3000, "0.0.0.0:3000", "http://127.0.0.1:3000"),
    ("", 3000, ":3000", "http://127.0.0.1:3000"),
    ("::", 8082, "[::]:8082", "http://[::1]:8082"),
    ("[::]", 8082, "[::]:8082", "http://[::1]:8082"),
    ("::1", 8082, "[::1]:8082", "http://[::1]:8082"),
    ("[::1]", 8082, "[::1]:8082", "http://[::1]:8082"),
    ("gpu-box.lan", 80, "gpu-box.lan:80", "http://gpu-box.lan:80"),
])
def test_one_host_to_url_rule_for_the_server_the_launcher_and_tail(host, port, bind, url):
    """Hypercorn binds ``host_port``; ``tail`` and the launcher reach ``local_url``."""
    assert host_port(host, port) == bind
    assert local_url(host, port) == url
