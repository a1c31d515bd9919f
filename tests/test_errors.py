"""proxy/errors.py's drawing is the truth: every exception class of the proxy is drawn
there, under its real parent, with its real status and error type."""

from __future__ import annotations

import importlib
import pkgutil
import re
from typing import Iterable

import httpx
import pytest
import trio

import proxy
from proxy import errors
from tests.fake_ollama import Line

#: one line of the drawing: the tree's rails, a class name, then "(STATUS type…" if it has one
_LINE = re.compile(r"^(?P<rails>(?:[│ ]   )*(?:[├└]── )?)(?P<name>[A-Z]\w*)(?:\s+\((?P<status>\d{3}) (?P<type>\w+))?")


def drawing(doc: str) -> dict[str, tuple[str, int | None, str | None]]:
    """The drawing in ``doc`` (the first ``::`` block): class name → (parent name, status,
    error type); a root's parent is ``Exception``."""
    block = doc.split("::\n", 1)[1]
    drawn: dict[str, tuple[str, int | None, str | None]] = {}
    stack: list[str] = []  # the names on the path to the current line, by depth
    for line in block.splitlines()[1:]:
        if line and not line.startswith("    "):
            break  # the block ends at the first line that is not indented
        line = line[4:]
        if not line.strip():
            continue
        match = _LINE.match(line)
        assert match is not None, f"unreadable line in the drawing: {line!r}"
        depth = len(match["rails"]) // 4
        assert depth <= len(stack), f"{match['name']} is drawn deeper than its parent"
        del stack[depth:]
        name = match["name"]
        assert name not in drawn, f"{name} is drawn twice"
        status = int(match["status"]) if match["status"] else None
        drawn[name] = (stack[-1] if stack else "Exception", status, match["type"])
        stack.append(name)
    return drawn


def project_exceptions(prefixes: Iterable[str] = ("proxy",)) -> dict[str, type[BaseException]]:
    """Every exception class defined in a module under ``prefixes``, found by walking the
    subclasses of ``Exception`` once every module of the proxy is imported."""
    for module in pkgutil.walk_packages(proxy.__path__, "proxy."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    prefixes = tuple(prefixes)
    found: dict[str, type[BaseException]] = {}
    todo: list[type[BaseException]] = [Exception]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            todo.append(sub)
            if sub.__module__.split(".")[0] in prefixes or sub.__module__ in prefixes:
                found[sub.__name__] = sub
    return found


def differences(drawn: dict[str, tuple[str, int | None, str | None]],
                classes: dict[str, type[BaseException]]) -> list[str]:
    """What the drawing gets wrong about ``classes``: each an English sentence."""
    wrong = [f"{name} is not drawn" for name in classes if name not in drawn]
    wrong += [f"{name} is drawn but does not exist" for name in drawn if name not in classes]
    for name, cls in classes.items():
        if name not in drawn:
            continue
        parent, status, error_type = drawn[name]
        if cls.__bases__[0].__name__ != parent or len(cls.__bases__) != 1:
            wrong.append(f"{name} is drawn under {parent}, but its bases are {[b.__name__ for b in cls.__bases__]}")
        if cls.__module__.startswith("proxy.") and cls.__module__ != "proxy.errors":
            wrong.append(f"{name} lives in {cls.__module__}, not in proxy.errors")
        if issubclass(cls, errors.ProxyError):
            if status is None:
                wrong.append(f"{name} is a ProxyError drawn without its status")
            elif (status, error_type) != (cls.status, cls.error_type):
                wrong.append(f"{name} is drawn ({status} {error_type}) but is ({cls.status} {cls.error_type})")
        elif status is not None:
            wrong.append(f"{name} is drawn with a status, but no client ever sees it")
    return wrong


def test_the_drawing_lists_every_exception_class_of_the_proxy() -> None:
    classes = project_exceptions()
    assert {"ProxyError", "UpstreamProtocolError", "ConfigError", "MachineError", "ClientDisconnected"} <= set(classes)
    assert differences(drawing(errors.__doc__ or ""), classes) == []


def test_every_class_is_exported() -> None:
    assert set(project_exceptions()) <= set(errors.__all__)


def test_a_class_added_without_being_drawn_is_reported() -> None:
    class StrayUpstream(errors.UpstreamError):  # defined here, as a new class would be
        status = 503

    class StrayRoot(Exception):
        pass

    found = project_exceptions(prefixes=("proxy", __name__))
    assert found["StrayUpstream"] is StrayUpstream
    assert sorted(differences(drawing(errors.__doc__ or ""), found)) == [
        "StrayRoot is not drawn",
        "StrayUpstream is not drawn",
    ]


def test_a_wrong_parent_or_status_in_the_drawing_is_reported() -> None:
    doc = (errors.__doc__ or "").replace(
        "        └── UpstreamProtocolError   (502 api_error)",
        "        └── UpstreamProtocolError   (500 api_error)",
    ).replace("    ├── NotFound ", "    │   ├── NotFound ")
    assert sorted(differences(drawing(doc), project_exceptions())) == [
        "NotFound is drawn under Forbidden, but its bases are ['ProxyError']",
        "UpstreamProtocolError is drawn (500 api_error) but is (502 api_error)",
    ]


@pytest.mark.parametrize("missing", ["    MachineError ", "        ├── UpstreamBusy "])
def test_a_class_missing_from_the_drawing_is_reported(missing: str) -> None:
    doc = "\n".join(line for line in (errors.__doc__ or "").splitlines() if not line.startswith(missing))
    name = missing.split()[-1]
    assert f"{name} is not drawn" in differences(drawing(doc), project_exceptions())


async def test_ollamas_error_line_is_the_500_the_drawing_says(fake_ollama, proxy) -> None:
    """An ``{"error": …}`` line before any output: the client gets the class the drawing
    names for it (``UpstreamError``, 500) with Ollama's words, after the one quick retry."""
    line = next(line for line in (errors.__doc__ or "").splitlines() if "── UpstreamError " in line)
    assert "(500 api_error)" in line and "an error line" in line
    for _ in range(2):  # the proxy's one quick retry (crash_retries) sees the same
        fake_ollama.script_chat([Line({"error": "llama runner process has terminated"})])
    with trio.fail_after(30):
        async with httpx.AsyncClient(base_url=proxy.url, timeout=20) as client:
            response = await client.post("/v1/messages", json={
                "model": "qwen3:8b", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}],
            })
    assert response.status_code == errors.UpstreamError.status == 500
    error = response.json()["error"]
    assert error["type"] == "api_error"
    assert error["message"].startswith("Ollama failed before its first token: llama runner process has terminated")
    assert response.headers["x-should-retry"] == "false"
