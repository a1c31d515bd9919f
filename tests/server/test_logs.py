"""Log records: the OpenTelemetry data model as NDJSON, parsed and checked field by field —
units (severity, traceparent, redaction, handlers) and the start/end records of real
requests through the server and the fake Ollama."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from pathlib import Path

import httpx
import pytest
import trio

from proxy.errors import ConfigError
from proxy.logs import (
    OTelJSONFormatter,
    configure_logging,
    parse_traceparent,
    redact,
    request_context,
    resource_attributes,
    severity_number,
)
from tests.fake_ollama import Chunk, Stall, Status, text_stream

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"
BODY = {"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": True,
        "messages": [{"role": "user", "content": "hi"}]}


# -- units -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "number"),
    [(logging.DEBUG, 5), (logging.INFO, 9), (logging.WARNING, 13), (logging.ERROR, 17), (logging.CRITICAL, 21),
     (5, 1), (25, 11), (60, 21)],
)
def test_severity_numbers_follow_the_data_model(level, number):
    assert severity_number(level) == number


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (TRACEPARENT, (TRACE_ID, SPAN_ID, 1)),
        (f"00-{TRACE_ID.upper()}-{SPAN_ID}-00", (TRACE_ID, SPAN_ID, 0)),
        (f"01-{TRACE_ID}-{SPAN_ID}-01-extra", (TRACE_ID, SPAN_ID, 1)),  # a future version may add fields
        (f"00-{TRACE_ID}-{SPAN_ID}-01-extra", None),  # version 00 may not
        (f"ff-{TRACE_ID}-{SPAN_ID}-01", None),
        (f"00-{'0' * 32}-{SPAN_ID}-01", None),
        (f"00-{TRACE_ID}-{'0' * 16}-01", None),
        (f"00-{TRACE_ID[:-1]}-{SPAN_ID}-01", None),
        ("garbage", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_traceparent(header, expected):
    assert parse_traceparent(header) == expected


def make_record(message: str = "hello %s", *args, level: int = logging.INFO, **extra) -> logging.LogRecord:
    logger = logging.getLogger("proxy.test")
    return logger.makeRecord("proxy.test", level, __file__, 1, message, args or ("world",), None, extra=extra)


def test_a_record_has_the_data_models_fields():
    formatter = OTelJSONFormatter(resource={"service.name": "svc"})
    before = time.time_ns()
    record = make_record(attributes={"k": 1, "nested": {"a": [1, 2]}}, event_name="test.event")
    line = formatter.format(record)
    assert "\n" not in line
    out = json.loads(line)
    assert set(out) == {"Timestamp", "SeverityNumber", "SeverityText", "Body", "EventName", "Attributes",
                        "Resource", "InstrumentationScope"}
    assert isinstance(out["Timestamp"], str) and abs(int(out["Timestamp"]) - before) < 5e9
    assert out["SeverityNumber"] == 9 and out["SeverityText"] == "INFO"
    assert out["Body"] == "hello world"
    assert out["EventName"] == "test.event"
    assert out["Attributes"] == {"k": 1, "nested": {"a": [1, 2]}}
    assert out["Resource"] == {"service.name": "svc"}
    assert out["InstrumentationScope"] == {"Name": "proxy.test"}


def test_a_record_inside_a_request_carries_its_id_and_trace():
    formatter = OTelJSONFormatter(resource={})
    with request_context("req_1", TRACEPARENT):
        inside = json.loads(formatter.format(make_record()))
    with request_context("req_2", "not a traceparent"):
        untraced = json.loads(formatter.format(make_record()))
    outside = json.loads(formatter.format(make_record()))
    assert inside["Attributes"]["proxy.request_id"] == "req_1"
    assert (inside["TraceId"], inside["SpanId"], inside["TraceFlags"]) == (TRACE_ID, SPAN_ID, 1)
    assert untraced["Attributes"]["proxy.request_id"] == "req_2" and "TraceId" not in untraced
    assert "proxy.request_id" not in outside["Attributes"] and "TraceId" not in outside


def test_exceptions_become_semantic_convention_attributes():
    formatter = OTelJSONFormatter(resource={})
    try:
        raise ValueError("bad thing")
    except ValueError:
        import sys

        record = logging.getLogger("proxy.test").makeRecord(
            "proxy.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    out = json.loads(formatter.format(record))
    assert out["SeverityNumber"] == 17
    assert out["Attributes"]["exception.type"] == "ValueError"
    assert out["Attributes"]["exception.message"] == "bad thing"
    assert "Traceback" in out["Attributes"]["exception.stacktrace"]


def test_resource_honours_the_standard_otel_variables():
    resource = resource_attributes({"OTEL_SERVICE_NAME": "my-proxy",
                                    "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=dev,team=ai%20tools"})
    assert resource["service.name"] == "my-proxy"
    assert resource["deployment.environment"] == "dev" and resource["team"] == "ai tools"
    assert resource["service.version"] and isinstance(resource["process.pid"], int) and resource["host.name"]


def test_redaction_of_keys_tokens_and_payloads():
    body = {
        "x-api-key": "k1",
        "headers": {"Authorization": "Bearer abcdefghijkl", "accept": "application/json"},
        "max_tokens": 100,
        "budget_tokens": 1024,
        "system": "use sk-ant-api03-AbCdEfGhIjKlMnOp and token ghp_0123456789abcdefghijABCD please",
        "note": "Authorization: Bearer abcdefghijkl0123",
        "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A" * 5000}},
        ]}],
        "images": ["B" * 300],
    }
    out = redact(body)
    assert out["x-api-key"] == "[REDACTED]"
    assert out["headers"] == {"Authorization": "[REDACTED]", "accept": "application/json"}
    assert out["max_tokens"] == 100 and out["budget_tokens"] == 1024
    assert "sk-ant" not in out["system"] and "ghp_" not in out["system"]
    assert out["system"].startswith("use [REDACTED] and token [REDACTED]")
    assert out["note"] == "Authorization: Bearer [REDACTED]"
    assert out["messages"][0]["content"][0]["source"]["data"] == "[base64, 5000 chars]"
    assert out["images"] == ["[base64, 300 chars]"]
    assert body["x-api-key"] == "k1"  # the original is untouched


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_quiet_keeps_info_off_the_console_but_not_out_of_the_file(tmp_path):
    console = io.StringIO()
    log_file = tmp_path / "logs" / "proxy.log"  # the folder is created
    configure_logging("INFO", log_file=str(log_file), quiet=True, stream=console)
    logger = logging.getLogger("proxy.test")
    logger.info("routine")
    logger.debug("too fine")
    logger.warning("look at this")
    console_records = [json.loads(line) for line in console.getvalue().splitlines()]
    assert [r["Body"] for r in console_records] == ["look at this"]
    assert [r["Body"] for r in read_records(log_file)] == ["routine", "look at this"]
    # reconfiguring replaces the handlers instead of adding more
    configure_logging("DEBUG", stream=console)
    logger.debug("fine now")
    assert console.getvalue().count("fine now") == 1
    assert "fine now" not in log_file.read_text()


def test_a_log_file_that_cannot_be_opened_is_a_config_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="log_file"):
        configure_logging("INFO", log_file=str(tmp_path / "file" / "proxy.log"), console=False)


# -- per-request records through the real server -------------------------------------------------


def by_event(records: list[dict], name: str) -> list[dict]:
    return [r for r in records if r.get("EventName") == name]


async def wait_for_event(path: Path, name: str, count: int = 1) -> list[dict]:
    with trio.fail_after(5):
        while True:
            found = by_event(read_records(path), name) if path.exists() else []
            if len(found) >= count:
                return found
            await trio.sleep(0.02)


async def test_start_and_end_records_of_a_streamed_request(fake_ollama, start_proxy, tmp_path):
    log_file = tmp_path / "proxy.log"
    proxy = await start_proxy(log_file=str(log_file), log_level="INFO")
    fake_ollama.script_chat([Chunk(content="Hel"), Chunk(content="lo"),
                             Chunk(done=True, done_reason="stop", prompt_eval_count=321, eval_count=42)])
    started = time.time_ns()
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            response = await client.post("/v1/messages?beta=true", json=BODY, headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200
    request_id = response.headers["request-id"]
    (start,) = await wait_for_event(log_file, "proxy.request.start")
    (end,) = await wait_for_event(log_file, "proxy.request.end")

    for record in (start, end):
        assert started - 1e9 < int(record["Timestamp"]) < time.time_ns() + 1e9
        assert (record["SeverityNumber"], record["SeverityText"]) == (9, "INFO")
        assert request_id in record["Body"]
        assert record["Resource"]["service.name"] == "claude-code-ollama-proxy"
        assert record["InstrumentationScope"] == {"Name": "proxy.request"}
        assert (record["TraceId"], record["SpanId"], record["TraceFlags"]) == (TRACE_ID, SPAN_ID, 1)
    assert int(start["Timestamp"]) <= int(end["Timestamp"])

    a = start["Attributes"]
    assert a["proxy.request_id"] == request_id
    assert a["gen_ai.request.model"] == "claude-sonnet-4-5"
    assert a["proxy.ollama_model"] == "qwen3:8b"
    assert a["proxy.stream"] is True
    assert a["proxy.messages"] == 1 and a["proxy.estimated_input_tokens"] > 0

    a = end["Attributes"]
    assert a["proxy.request_id"] == request_id
    assert a["gen_ai.request.model"] == "claude-sonnet-4-5"
    assert a["proxy.ollama_model"] == "qwen3:8b"
    assert a["proxy.stream"] is True
    assert a["http.response.status_code"] == 200
    assert 0 <= a["proxy.time_to_first_token_ms"] <= a["proxy.duration_ms"]
    assert a["proxy.duration_ms"] > 0
    assert a["gen_ai.usage.input_tokens"] == 321
    assert a["gen_ai.usage.output_tokens"] == 42
    assert a["proxy.tokens_per_second"] is None or a["proxy.tokens_per_second"] > 0
    assert a["proxy.stop_reason"] == "end_turn"
    assert a["proxy.ollama_done_reason"] == "stop"
    assert a["proxy.cancelled"] is False
    assert a["proxy.repairs"] == 0
    assert "error.type" not in a


async def test_end_record_of_a_failed_request(fake_ollama, start_proxy, tmp_path):
    log_file = tmp_path / "proxy.log"
    proxy = await start_proxy(log_file=str(log_file), commit_grace=5)
    fake_ollama.script_chat([Status(404, body={"error": "model 'qwen3:8b' not found"})])
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            response = await client.post("/v1/messages", json={**BODY, "stream": False})
    assert response.status_code == 400
    (end,) = await wait_for_event(log_file, "proxy.request.end")
    a = end["Attributes"]
    assert a["http.response.status_code"] == 400
    assert a["proxy.stream"] is False
    assert a["error.type"] == "invalid_request_error"
    assert "ollama pull qwen3:8b" in a["proxy.error_message"]
    assert a["proxy.time_to_first_token_ms"] is None
    assert a["proxy.stop_reason"] is None
    assert "TraceId" not in end  # no traceparent came in


async def test_end_record_of_a_cancelled_request(fake_ollama, start_proxy, tmp_path):
    log_file = tmp_path / "proxy.log"
    proxy = await start_proxy(log_file=str(log_file), commit_grace=0.05)
    fake_ollama.script_chat([Chunk(content="partial "), Stall()])
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            async with client.stream("POST", "/v1/messages", json=BODY) as response:
                async for data in response.aiter_raw():
                    if b"partial" in data:
                        break
        await fake_ollama.wait_disconnected(1)
    (end,) = await wait_for_event(log_file, "proxy.request.end")
    a = end["Attributes"]
    assert a["proxy.cancelled"] is True
    assert a["proxy.cancelled_during"] == "streaming"
    assert a["http.response.status_code"] == 200  # the stream had started
    assert a["proxy.time_to_first_token_ms"] is not None
    assert a["proxy.stop_reason"] is None


async def test_repairs_and_tool_use_in_the_end_record(fake_ollama, start_proxy, tmp_path):
    log_file = tmp_path / "proxy.log"
    proxy = await start_proxy(log_file=str(log_file))
    # arguments double-encoded as a JSON string: repaired to the object
    call = {"function": {"name": "Write", "arguments": json.dumps({"file_path": "a.txt", "content": "x"})}}
    fake_ollama.script_chat(text_stream("", tool_calls=[call]))
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            response = await client.post("/v1/messages", json={**BODY, "stream": False})
    assert response.json()["content"][0]["input"] == {"file_path": "a.txt", "content": "x"}
    (end,) = await wait_for_event(log_file, "proxy.request.end")
    assert end["Attributes"]["proxy.repairs"] == 1
    assert end["Attributes"]["proxy.stop_reason"] == "tool_use"


async def test_debug_adds_redacted_bodies(fake_ollama, start_proxy, tmp_path):
    log_file = tmp_path / "proxy.log"
    proxy = await start_proxy(log_file=str(log_file), log_level="DEBUG")
    secret = "sk-ant-api03-SECRETSECRETSECRET"
    fake_ollama.script_chat(text_stream("ok"))
    body = {**BODY, "stream": False, "system": f"the key is {secret}", "metadata": {"api_key": "k"}}
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            await client.post("/v1/messages", json=body, headers={"x-api-key": "client-key"})
    (record,) = await wait_for_event(log_file, "proxy.request.body")
    assert record["SeverityText"] == "DEBUG"
    logged = record["Attributes"]["proxy.request.body"]
    assert logged["messages"] == BODY["messages"]
    assert logged["system"] == "the key is [REDACTED]"
    assert logged["metadata"] == {"api_key": "[REDACTED]"}
    assert record["Attributes"]["proxy.ollama.body"]["model"] == "qwen3:8b"
    text = log_file.read_text()
    assert secret not in text and "client-key" not in text


async def test_info_level_has_no_bodies(fake_ollama, start_proxy, tmp_path):
    log_file = tmp_path / "proxy.log"
    proxy = await start_proxy(log_file=str(log_file), log_level="INFO")
    fake_ollama.script_chat(text_stream("ok"))
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            await client.post("/v1/messages", json={**BODY, "stream": False})
    await wait_for_event(log_file, "proxy.request.end")
    assert not by_event(read_records(log_file), "proxy.request.body")


# -- one failure, one record; the start-up warning; readable lines on a terminal -----------


async def test_an_ollama_404_is_one_record(fake_ollama, start_proxy, tmp_path):
    """Before: the capability lookup, the relay and the end record each logged it."""
    log_file = tmp_path / "proxy.log"
    proxy = await start_proxy(log_file=str(log_file), model_map=["sonnet=missing:1b"])
    fake_ollama.script_chat([Status(404, body={"error": "model 'missing:1b' not found"})])
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            response = await client.post("/v1/messages", json={**BODY, "stream": False})
    assert response.status_code == 400  # Claude Code shows a 400's message (issue 16)
    (end,) = await wait_for_event(log_file, "proxy.request.end")
    records = read_records(log_file)
    about_it = [r for r in records if "missing:1b" in r["Body"] and r["SeverityNumber"] >= 9
                and r.get("EventName") != "proxy.request.start"]
    assert about_it == [end]
    assert (end["SeverityText"], end["Attributes"]["error.type"]) == ("WARNING", "invalid_request_error")
    assert "failed: 400" in end["Body"] and "ollama pull missing:1b" in end["Body"]
    assert [r for r in records if r["SeverityNumber"] >= 13] == [end]


async def test_an_unreachable_ollama_is_one_warning_at_start_up(start_proxy, tmp_path):
    log_file = tmp_path / "proxy.log"
    with trio.socket.socket() as probe:  # a port where nothing listens
        await probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    proxy = await start_proxy(log_file=str(log_file), ollama_url=dead)
    records = read_records(log_file)
    warnings = [r for r in records if r["SeverityNumber"] >= 13]
    assert len(warnings) == 1
    assert dead in warnings[0]["Body"] and "from --ollama-url" in warnings[0]["Body"]
    assert "ollama serve" in warnings[0]["Body"]
    assert warnings[0]["Attributes"]["proxy.ollama_url_origin"] == "from --ollama-url"
    # the request that then fails says so in its own record, naming the URL's origin
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            response = await client.post("/v1/messages", json={**BODY, "stream": False})
    assert response.status_code == 502
    assert "the URL is from --ollama-url" in response.json()["error"]["message"]
    (end,) = await wait_for_event(log_file, "proxy.request.end")
    assert len([r for r in read_records(log_file) if r["SeverityNumber"] >= 13]) == 2  # no third
    assert end["SeverityText"] == "WARNING"


async def test_a_reachable_ollama_gets_no_start_up_warning(fake_ollama, start_proxy, tmp_path):
    log_file = tmp_path / "proxy.log"
    await start_proxy(log_file=str(log_file))
    records = read_records(log_file)
    assert [r["Body"] for r in records if r["SeverityNumber"] >= 13] == []
    (ready,) = [r for r in records if r["Body"].startswith("proxy ready")]
    assert f"Ollama at {fake_ollama.url} (from --ollama-url)" in ready["Body"]


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "style", "text"),
    [(FakeTTY, "auto", True), (io.StringIO, "auto", False), (FakeTTY, "json", False), (io.StringIO, "text", True)],
)
def test_console_format_follows_the_terminal_unless_chosen(tmp_path, stream, style, text):
    console = stream()
    log_file = tmp_path / "proxy.log"
    configure_logging("INFO", log_file=str(log_file), stream=console, style=style)
    with request_context("req_abc"):
        logging.getLogger("proxy.test").warning("Ollama said %s", "no")
    line = console.getvalue()
    if text:
        assert re.fullmatch(r"\d\d:\d\d:\d\d WARNING  Ollama said no \[req_abc\]\n", line)
    else:
        assert json.loads(line)["Body"] == "Ollama said no"
    # the file is NDJSON whatever the console shows
    (record,) = read_records(log_file)
    assert record["Attributes"]["proxy.request_id"] == "req_abc"


def test_a_text_line_names_an_exception_and_an_error_keeps_its_traceback():
    console = FakeTTY()
    configure_logging("INFO", stream=console, style="auto")
    logger = logging.getLogger("proxy.test")
    for level in (logging.WARNING, logging.ERROR):
        try:
            raise ValueError("bad thing")
        except ValueError:
            logger.log(level, "it broke", exc_info=True)
    warning, error = console.getvalue().split("\n", 1)
    assert warning.endswith("WARNING  it broke (ValueError: bad thing)")
    assert error.splitlines()[0].endswith("ERROR    it broke (ValueError: bad thing)")
    assert "Traceback (most recent call last)" in error
