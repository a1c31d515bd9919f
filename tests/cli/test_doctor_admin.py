"""`doctor`, `models` and `pull` against the fake Ollama (and a scripted /api/pull)."""

from __future__ import annotations

import io
import json

import httpx
import pytest
import trio

from proxy.cli import admin as admin_commands
from proxy.config import describe_source, load_settings
from proxy.cli.doctor import Check, Facts, Verdict, evaluate, exit_code, model_roles, render_table
from proxy.errors import ProxyError
from proxy.ollama.admin import (
    PullProgress, canonical_name, list_models, list_running, parse_version, pull_model, settle_container_default,
)
from tests.fake_ollama import Model

CLAUDE = lambda name: "/usr/local/bin/claude"  # noqa: E731 - `which` stand-ins
NO_CLAUDE = lambda name: None  # noqa: E731


def settings_for(url: str, **values):
    base = {"host": "127.0.0.1", "port": 0, "ollama_url": url}
    base.update(values)
    return load_settings(base, environ={}, read_config_file=False)


async def run_doctor(settings, which=CLAUDE) -> tuple[int, list[dict], str]:
    out, table = io.StringIO(), io.StringIO()
    with trio.fail_after(20):
        code = await admin_commands.doctor(settings, as_json=True, out=out, which=which)
        again = await admin_commands.doctor(settings, out=table, which=which)
    assert again == code
    return code, json.loads(out.getvalue()), table.getvalue()


def line(checks: list[dict], subject: str) -> dict:
    (found,) = [c for c in checks if c["check"] == subject]
    return found


async def test_healthy(fake_ollama):
    fake_ollama.models.append(Model("qwen3-coder:30b", capabilities=("completion", "tools"), context_length=262144))
    settings = settings_for(fake_ollama.url, default_model="qwen3-coder:30b", model_map=["haiku=llama3.2:3b"])
    code, checks, table = await run_doctor(settings)
    assert code == 0
    assert line(checks, f"Ollama at {fake_ollama.url}") == {
        "check": f"Ollama at {fake_ollama.url}", "verdict": "ok", "detail": "reachable, version 0.12.6; this URL is from --ollama-url", "fix": ""}
    assert line(checks, "qwen3-coder:30b (default, sonnet, opus)")["verdict"] == "ok"
    assert line(checks, "qwen3-coder:30b tool calling")["verdict"] == "ok"
    assert line(checks, "qwen3-coder:30b context")["detail"] == "262144 tokens"
    assert line(checks, "qwen3-coder:30b thinking")["verdict"] == "warn"
    assert line(checks, "llama3.2:3b (haiku)")["verdict"] == "ok"
    assert line(checks, "llama3.2:3b thinking")["verdict"] == "info"  # haiku only: side requests
    assert line(checks, "Claude Code")["verdict"] == "ok"
    assert not [c for c in checks if c["verdict"] == "fail"]
    assert table.splitlines()[0].split() == ["CHECK", "VERDICT", "DETAIL", "FIX"]
    assert table.rstrip().endswith("warning(s).")


async def test_ollama_unreachable(fake_ollama):
    # a port nobody listens on: bind 127.0.0.1:0, note the port, close it
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    await listeners[0].aclose()
    code, checks, table = await run_doctor(settings_for(f"http://127.0.0.1:{port}"), which=NO_CLAUDE)
    assert code == 1
    ollama = line(checks, f"Ollama at http://127.0.0.1:{port}")
    assert ollama["verdict"] == "fail" and "not reachable" in ollama["detail"]
    assert "ollama serve" in ollama["fix"]
    assert line(checks, "models")["verdict"] == "info"
    assert line(checks, "Claude Code") == {"check": "Claude Code", "verdict": "warn", "detail": "`claude` is not on PATH",
                                           "fix": "npm install -g @anthropic-ai/claude-code"}
    assert "FAIL" in table and "will not work" in table


async def test_model_not_installed(fake_ollama):
    code, checks, _ = await run_doctor(settings_for(fake_ollama.url, default_model="qwen3-coder:30b"))
    assert code == 1
    missing = line(checks, "qwen3-coder:30b (default, haiku, sonnet, opus)")
    assert missing["verdict"] == "fail"
    assert missing["fix"].startswith("claude-code-ollama-proxy pull qwen3-coder:30b")


async def test_model_without_tools_fails_and_names_models_that_have_them(fake_ollama):
    code, checks, _ = await run_doctor(
        settings_for(fake_ollama.url, model_map=["opus=gemma3:4b"], tool_emulation=False)
    )
    assert code == 1
    tools = line(checks, "gemma3:4b tool calling")
    assert tools["verdict"] == "fail"
    assert "llama3.2:3b" in tools["fix"] and "qwen3:8b" in tools["fix"]


async def test_model_without_tools_is_a_warning_while_tools_are_emulated(fake_ollama):
    code, checks, _ = await run_doctor(settings_for(fake_ollama.url, model_map=["opus=gemma3:4b"]))
    tools = line(checks, "gemma3:4b tool calling")
    assert tools["verdict"] == "warn" and "emulates" in tools["detail"]


async def test_haiku_only_shortcomings_are_warnings(fake_ollama):
    code, checks, _ = await run_doctor(settings_for(fake_ollama.url, model_map=["haiku=gemma3:4b"]))
    assert line(checks, "gemma3:4b tool calling")["verdict"] == "warn"
    assert code == 0


@pytest.mark.parametrize(
    ("length", "settings", "verdict", "fix"),
    [
        (8192, {}, "fail", "use a model with at least 65536"),
        (40960, {}, "info", "qwen3-coder:30b"),  # works: Claude Code compacts when it fills
        (65536, {}, "ok", ""),
        # the settings cap what the model could take: the fix is the setting, not the model
        (131072, {"max_num_ctx": 16384}, "fail", "raise max_num_ctx / num_ctx to at least 32768"),
        (131072, {"max_num_ctx": 40960}, "warn", "raise max_num_ctx / num_ctx (the model takes 131072)"),
        (131072, {"num_ctx": 65536}, "ok", ""),
    ],
)
async def test_context_length_thresholds(fake_ollama, length, settings, verdict, fix):
    fake_ollama.models.append(Model("sized:1b", capabilities=("completion", "tools", "thinking"), context_length=length))
    code, checks, _ = await run_doctor(settings_for(fake_ollama.url, default_model="sized:1b", **settings))
    found = line(checks, "sized:1b context")
    assert found["verdict"] == verdict
    assert fix in found["fix"]
    assert code == (1 if verdict == "fail" else 0)


async def test_the_readme_path_reads_ready(fake_ollama):
    """The README's own path (qwen3:8b, the default model, pulled; Claude Code installed;
    no proxy running yet) is healthy: no failure, no warning, and each note says what to do."""
    code, checks, table = await run_doctor(settings_for(fake_ollama.url))
    assert code == 0
    assert [c["check"] for c in checks if c["verdict"] in ("warn", "fail")] == []
    assert table.rstrip().endswith("ready.")
    assert "qwen3-coder:30b" in line(checks, "qwen3:8b context")["fix"]


async def test_old_ollama_is_a_warning(fake_ollama):
    fake_ollama.version = "0.5.7"
    code, checks, _ = await run_doctor(settings_for(fake_ollama.url))
    assert line(checks, "Ollama version")["verdict"] == "warn"
    assert code == 0


async def test_running_proxy_and_exposure(fake_ollama, proxy):
    port = int(proxy.url.rsplit(":", 1)[1])
    _, checks, _ = await run_doctor(settings_for(fake_ollama.url, port=port))
    assert line(checks, f"proxy at http://127.0.0.1:{port}")["detail"] == "running"
    # evaluate() alone: a non-loopback host without a key
    exposed = evaluate(settings_for(fake_ollama.url, host="0.0.0.0"), Facts(fake_ollama.url, "0.12.6"))
    assert [c.verdict for c in exposed if c.subject == "exposure"] == [Verdict.WARN]


def test_model_roles_and_exit_code():
    settings = settings_for("http://o:1", default_model="a", model_map=["haiku=b", "claude-x=b", "sonnet=a"])
    assert model_roles(settings) == {"a": ["default", "sonnet", "opus"], "b": ["haiku", "map claude-x"]}
    assert exit_code([Check("x", Verdict.WARN, "")]) == 0
    assert exit_code([Check("x", Verdict.OK, ""), Check("y", Verdict.FAIL, "")]) == 1
    table = render_table([Check("x", Verdict.FAIL, "a " * 40, "fix it")])
    assert all(len(l) < 120 for l in table.splitlines())


def test_names_and_versions():
    assert canonical_name("qwen3") == "qwen3:latest"
    assert canonical_name("qwen3:8b") == "qwen3:8b"
    assert canonical_name("hf.co/u/m") == "hf.co/u/m:latest"
    assert canonical_name("localhost:5000/m") == "localhost:5000/m:latest"
    assert parse_version("0.12.6") == (0, 12, 6)
    assert parse_version("v0.13") == (0, 13, 0)
    assert parse_version("0.12.0-rc1") == (0, 12, 0)
    assert parse_version("dev") is None


# -- models ---------------------------------------------------------------------------------


async def test_models_lists_capabilities_context_and_roles(fake_ollama):
    settings = settings_for(fake_ollama.url, model_map=["haiku=llama3.2:3b"])
    out = io.StringIO()
    with trio.fail_after(10):
        assert await admin_commands.models(settings, out=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "PARAMS", "CONTEXT", "TOOLS", "THINKING", "VISION", "ROLES"]
    rows = {l.split()[0]: l.split() for l in lines[1:]}  # name, size (2 words), params, context, …
    assert rows["qwen3:8b"][1:3] == ["5.0", "GB"]
    assert rows["qwen3:8b"][4:8] == ["40960", "yes", "yes", "no"]
    assert rows["qwen3:8b"][8:] == ["default,", "sonnet,", "opus"]
    assert rows["gemma3:4b"][4:8] == ["131072", "no", "no", "yes"]
    assert rows["llama3.2:3b"][-1] == "haiku"
    out = io.StringIO()
    with trio.fail_after(10):
        assert await admin_commands.models(settings, as_json=True, out=out) == 0
    data = {row["name"]: row for row in json.loads(out.getvalue())}
    assert data["qwen3:8b"]["capabilities"] == ["completion", "tools", "thinking"]
    assert data["qwen3:8b"]["context_length"] == 40960
    assert data["gemma3:4b"]["roles"] == []


async def test_models_when_ollama_is_down(capsys):
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    await listeners[0].aclose()
    with trio.fail_after(10):
        assert await admin_commands.models(settings_for(f"http://127.0.0.1:{port}")) == 1
    assert "Cannot reach Ollama" in capsys.readouterr().err


# -- pull -----------------------------------------------------------------------------------


def pull_transport(lines: list[dict], status: int = 200) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/pull"
        assert json.loads(request.content) == {"model": "qwen3:8b", "stream": True}
        body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
        return httpx.Response(status, content=body, headers={"content-type": "application/x-ndjson"})

    return httpx.MockTransport(handler)


PULL_LINES = [
    {"status": "pulling manifest"},
    *({"status": "pulling abc123", "digest": "sha256:abc123", "total": 1000, "completed": done}
      for done in (0, 150, 500, 999, 1000)),
    {"status": "verifying sha256 digest"},
    {"status": "writing manifest"},
    {"status": "success"},
]


async def pull_with(lines, *, tty: bool, status: int = 200) -> tuple[list[PullProgress], str]:
    seen: list[PullProgress] = []
    out = io.StringIO()
    printer = admin_commands.PullPrinter(out, tty=tty)

    def record(progress: PullProgress) -> None:
        seen.append(progress)
        printer(progress)

    async with httpx.AsyncClient(base_url="http://ollama", transport=pull_transport(lines, status)) as client:
        with trio.fail_after(10):
            await pull_model(client, "qwen3:8b", record)
    printer.close()
    return seen, out.getvalue()


async def test_pull_plain_lines_when_not_a_terminal():
    seen, text = await pull_with(PULL_LINES, tty=False)
    assert seen[1] == PullProgress("pulling abc123", "sha256:abc123", 1000, 0)
    assert text.splitlines() == [
        "pulling manifest",
        "pulling abc123: 0% of 1.0 KB",
        "pulling abc123: 10% of 1.0 KB",
        "pulling abc123: 50% of 1.0 KB",
        "pulling abc123: 90% of 1.0 KB",
        "pulling abc123: 100% of 1.0 KB",
        "verifying sha256 digest",
        "writing manifest",
        "success",
    ]


async def test_pull_progress_bar_on_a_terminal():
    _, text = await pull_with(PULL_LINES, tty=True)
    assert text.count("\r") == 5  # the bar is redrawn in place
    assert "[###############---------------]  50.0%" in text
    assert "[##############################] 100.0%" in text
    assert text.splitlines()[-1] == "success"


async def test_pull_errors():
    with pytest.raises(ProxyError, match="file does not exist"):
        await pull_with([{"status": "pulling manifest"}, {"error": "pull model manifest: file does not exist"}], tty=False)
    with pytest.raises(ProxyError, match="without saying success"):
        await pull_with([{"status": "pulling manifest"}], tty=False)
    with pytest.raises(ProxyError, match="Ollama answered HTTP 500"):
        await pull_with([{"error": "boom"}], tty=False, status=500)


# -- the container default, and where the URL came from -------------------------------------


def container_settings(url: str = "http://host.docker.invalid:11434"):
    """Settings as a container gets them when nothing names Ollama's URL (the name given
    here does not resolve anywhere: .invalid is reserved)."""
    import dataclasses

    settings = load_settings({"host": "127.0.0.1", "port": 0}, environ={}, read_config_file=False, in_container=True)
    assert describe_source(settings, "ollama_url") == "the container default"
    return dataclasses.replace(settings, ollama_url=url)


async def test_the_container_default_falls_back_to_loopback_when_its_name_does_not_resolve(fake_ollama):
    with trio.fail_after(20):
        settled = await settle_container_default(container_settings(), loopback=fake_ollama.url)
    assert settled.ollama_url == fake_ollama.url
    origin = describe_source(settled, "ollama_url")
    assert origin == "loopback, because host.docker.invalid (the container default) does not resolve here"
    code, checks, _ = await run_doctor(settled)
    assert line(checks, f"Ollama at {fake_ollama.url}")["detail"].endswith(f"this URL is {origin}")


async def test_the_container_default_is_kept_and_explained_when_loopback_is_silent():
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with trio.fail_after(20):
        settled = await settle_container_default(container_settings(), loopback=dead)
    assert settled.ollama_url == "http://host.docker.invalid:11434"
    origin = describe_source(settled, "ollama_url")
    assert origin == f"the container default; host.docker.invalid does not resolve here, nor does {dead} answer"
    code, checks, _ = await run_doctor(settled)
    assert code == 1
    assert line(checks, "Ollama at http://host.docker.invalid:11434")["detail"].endswith(origin)


async def test_a_resolving_container_default_and_any_configured_url_are_left_alone(fake_ollama):
    resolving = container_settings("http://localhost:1")  # resolves: kept, even if nothing answers
    with trio.fail_after(20):
        assert await settle_container_default(resolving, loopback=fake_ollama.url) is resolving
        configured = settings_for("http://host.docker.invalid:11434")  # from --ollama-url: never replaced
        assert await settle_container_default(configured, loopback=fake_ollama.url) is configured


@pytest.mark.parametrize("answer", [{"models": None}, {"other": []}, [1, 2]])
async def test_a_models_list_that_is_not_a_list_is_said_so_for_tags_and_ps(answer):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=answer)

    async with httpx.AsyncClient(base_url="http://ollama", transport=httpx.MockTransport(handler)) as client:
        with trio.fail_after(5):
            with pytest.raises(ProxyError, match=r"^Ollama's /api/tags answer has no models list$"):
                await list_models(client)
            with pytest.raises(ProxyError, match=r"^Ollama's /api/ps answer has no models list$"):
                await list_running(client)


async def test_entries_that_are_not_objects_are_skipped_in_tags_and_ps():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"models": ["junk", 3, {"name": "qwen3:8b", "size": 5}, {"model": "gemma3:4b"}]})

    async with httpx.AsyncClient(base_url="http://ollama", transport=httpx.MockTransport(handler)) as client:
        with trio.fail_after(5):
            assert [(m.name, m.size) for m in await list_models(client)] == [("qwen3:8b", 5), ("gemma3:4b", 0)]
            assert await list_running(client) == ["qwen3:8b", "gemma3:4b"]
