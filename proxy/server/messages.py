"""``POST /v1/messages``: decide everything, then relay.

In order: read and validate the body; map the model; route it to a host; ask that host
what the model can do; apply the tool-emulation policy; make the plan
(:func:`proxy.protocol.plan.make_plan`: size, translate, the fallbacks for Ollama's
refusals); note the ``num_ctx`` high-water mark; start the request's log record and live
watch; relay (:func:`proxy.server.relay.serve_messages`). From the :class:`Outcome` the
relay returns: correct the capability cache when Ollama refused what it allowed, keep
the high-water mark, calibrate the token estimate, and end the log record and the watch.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

import trio

from .asgi import Receive, Scope, Send, header
from .relay import serve_messages
from .request_log import RequestRecord, log_request_bodies, log_request_end, log_request_start
from ..errors import ProxyError, RequestError
from ..ollama.capabilities import CapabilityCache
from ..protocol.auto_mode import has_verdict, is_auto_mode_check
from ..protocol.bounded import clip
from ..protocol.context import looks_truncated
from ..protocol.lifecycle import Outcome, Phase
from ..protocol.models import resolve_model
from ..protocol.plan import HEADERS as FALLBACK_HEADERS
from ..protocol.plan import Fallback, Plan, PlanSettings, make_plan

__all__ = ["handle_messages", "missing_capability", "plan_settings"]
from ..protocol.routing import session_key
from ..protocol.thinking import wants_thinking
from ..protocol.translate import validate_request
from ..stream.dialects import dialects_for_template, native_dialect, template_opens_think
from ..stream.translator import ResponseTranslator

if TYPE_CHECKING:
    from ..config import Settings
    from .app import ProxyApp


log = logging.getLogger("proxy.app")


def plan_settings(settings: Settings) -> PlanSettings:
    """The settings a request's plan depends on, as the planner takes them."""
    keep_alive: str | int | None = None
    if settings.keep_alive:
        # Ollama takes a duration string ("30m") or a number of seconds (-1: forever).
        try:
            keep_alive = int(settings.keep_alive)
        except ValueError:
            keep_alive = settings.keep_alive
    return PlanSettings(
        num_ctx=settings.num_ctx,
        max_num_ctx=settings.max_num_ctx,
        cap_num_predict=settings.cap_num_predict,
        keep_alive=keep_alive,
        sequential_tools=settings.sequential_tools,
        tool_emulation=settings.tool_emulation,
    )


async def missing_capability(cache: CapabilityCache, model: str, capability: str, what: str) -> RequestError:
    """The 400 for a model that lacks ``capability`` while the settings refuse to work
    around it: names the installed models that have it, or one to pull."""
    having = await cache.models_that(capability)
    return RequestError(
        f"{model} {what}. Models installed that can {'think' if capability == 'thinking' else 'call tools'}: "
        + (", ".join(having) if having else "none (try `ollama pull qwen3:8b`)")
    )


@dataclasses.dataclass(slots=True)
class _Seen:
    """What the live view can be told of a request refused before it reached Ollama."""

    session: str | None
    model: str | None = None


async def handle_messages(app: ProxyApp, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
    seen = _Seen(session=header(scope, b"x-claude-code-session-id"))
    try:
        await _messages(app, scope, receive, send, request_id, seen)
    except ProxyError as exc:
        # Refused before it reached Ollama (the relay answers every later failure
        # itself): the live view shows it too.
        app.live.rejected(request_id, exc, model=seen.model)
        raise


async def _messages(
    app: ProxyApp, scope: Scope, receive: Receive, send: Send, request_id: str, seen: _Seen
) -> None:
    raw, known_tools, size = await app._read_json(scope, receive)
    if isinstance(raw, dict) and isinstance(raw.get("model"), str):
        seen.model = clip(raw["model"])  # for the live view, even when the body is refused
    body: dict[str, Any] = await app._off_loop(size, validate_request, raw)
    settings = app.settings
    session = seen.session
    ollama_model = resolve_model(body["model"], settings.model_map, settings.default_model)
    verdict_key = (session, body["model"], ollama_model) if session else None
    app.verdicts.known_missing(ollama_model, request_id, now=trio.current_time())
    if verdict_key is not None and not body.get("stream"):
        app.verdicts.repeat(verdict_key, request_id, now=trio.current_time())
    hosts = app.pool
    route = await hosts.route(ollama_model, session_key(session, body))
    host_url = route.first.url
    # What a model can do is asked of the host expected to run it (versions may differ).
    capability_cache = hosts.capabilities(route.first)
    capabilities = await capability_cache.get(ollama_model)
    if body.get("tools") and not capabilities.tools and not settings.tool_emulation:
        raise await missing_capability(
            capability_cache, ollama_model, "tools", "cannot call tools, and tool_emulation is off"
        )
    # the mark of the host expected to run it (a larger num_ctx reloads the model there)
    planned_marks = app.num_ctx_high_waters[host_url]
    high_water = planned_marks.get(ollama_model, 0)
    plan: Plan = await app._off_loop(
        size,
        lambda: make_plan(
            body,
            ollama_model=ollama_model,
            settings=app.plan_settings,
            can_think=capabilities.thinking,
            can_call_tools=capabilities.tools,
            context_length=capabilities.context_length,
            call_dialect=native_dialect(capabilities.template),
            calibration=app.calibration,
            high_water=high_water,
            known_tools=known_tools,
        ),
    )
    request = plan.made
    num_ctx = plan.num_ctx
    if body.get("tools") and not capabilities.tools:
        log.info("request %s: %s has no native tool calling; tools are emulated in the prompt", request_id, ollama_model)
    headers: list[tuple[str, str]] = []
    if request.thinking_dropped:
        # The client asked for thinking from a model that cannot think: drop it and say
        # so in a header, or (strict_thinking) refuse with a 400 naming the models that can.
        if settings.strict_thinking:
            raise await missing_capability(
                capability_cache, ollama_model, "thinking", "cannot think, and strict_thinking is on"
            )
        capability_cache.warn_thinking_dropped(ollama_model)
        headers.append(FALLBACK_HEADERS[Fallback.WITHOUT_THINK])

    if num_ctx > planned_marks.get(ollama_model, 0):
        planned_marks[ollama_model] = num_ctx
    translator = ResponseTranslator(
        client_model=body["model"],
        input_tokens=plan.estimate,
        tools=request.tools,
        loop_guard_chars=settings.loop_guard_chars,
        stop_sequences=body.get("stop_sequences"),
        dialects=dialects_for_template(capabilities.template),
        thinking=wants_thinking(body),
        # Ollama parses the thinking of a model it knows thinks: then content starts outside
        think_open=not capabilities.thinking and template_opens_think(capabilities.template),
    )
    record = RequestRecord(
        request_id=request_id,
        client_model=body["model"],
        ollama_model=ollama_model,
        stream=request.stream,
        started=trio.current_time(),
        estimated_input_tokens=translator.estimated_input_tokens,
        messages=len(request.ollama["messages"]),
        tools=len(request.ollama.get("tools") or ()),
        host=host_url,
    )
    log_request_start(record)
    await app._off_loop(size, log_request_bodies, record, body, request.ollama)
    watch = app.live.watch(
        request_id=request_id,
        model=body["model"],
        ollama_model=ollama_model,
        stream=request.stream,
        messages=record.messages,
        tools=record.tools,
        input_tokens=plan.estimate,
        num_ctx=num_ctx,
        now=record.started,
        host=host_url,
    )
    outcome: Outcome | None = None
    try:
        outcome = await serve_messages(
            receive,
            send,
            route=route,
            settings=app.relay_settings,
            plan=plan,
            translator=translator,
            request_id=request_id,
            started=record.started,
            headers=headers,
            watch=watch,
        )
    finally:
        if outcome is None:  # cancelled from outside: the server's shutdown ran out of grace
            watch.finish(
                outcome=Outcome(
                    status=499, end=Phase.CUT, started=record.started, ended=trio.current_time(),
                    first_output_at=watch.first_output, output_tokens=translator.approx_output_tokens,
                    host=host_url,
                ),
                translator=translator,
            )
    _believe_ollama(capability_cache, ollama_model, request_id, outcome)
    served_by = outcome.host or host_url
    if outcome.ollama_status != 200 or served_by != host_url:
        if planned_marks.get(ollama_model) == num_ctx:
            # The planned host did not load the model with it (no such model, refused,
            # unreachable, another host answered): forget it, so names Ollama never
            # confirmed leave nothing behind.
            if high_water:
                planned_marks[ollama_model] = high_water
            else:
                del planned_marks[ollama_model]
    if outcome.ollama_status == 200:
        # Used: set again, so the table drops the model used longest ago, not this one.
        marks = app.num_ctx_high_waters[served_by]
        marks[ollama_model] = max(num_ctx, marks.get(ollama_model, 0))
    _learn_prompt_size(app, ollama_model, plan.raw_estimate, translator.input_tokens, num_ctx)
    check_form = is_auto_mode_check(body)
    if check_form and outcome.status == 200 and outcome.error is None:
        if not has_verdict(translator.text_head, check_form):
            log.warning(
                "request %s: auto mode's safety check got no verdict from %s (answer: %r); Claude"
                " Code will not run the action. Map claude-auto-mode to a model that follows"
                " the check's format (docs/CLI.md, auto mode)",
                request_id, ollama_model, translator.text_head[:120],
            )
            watch.no_verdict(translator.text_head[:120])
    app.verdicts.remember_missing(ollama_model, request_id, outcome, now=outcome.ended)
    if verdict_key is not None and request.stream:
        app.verdicts.remember(verdict_key, request_id, outcome, translator, now=outcome.ended)
    log_request_end(record, outcome=outcome, translator=translator, tried=route.tried)
    watch.finish(outcome=outcome, translator=translator)
    app.live.hosts_changed()


def _believe_ollama(cache: CapabilityCache, model: str, request_id: str, outcome: Outcome) -> None:
    """Ollama refused what the cached capabilities allowed and a fallback of the plan
    cured it: correct the cache, so the next requests are made right at once."""
    for fallback in outcome.fallbacks:
        if fallback is Fallback.WITHOUT_THINK:
            cache.contradicted(model, "thinking", "Ollama says it does not support thinking")
            cache.warn_thinking_dropped(model)
        elif fallback is Fallback.TOOLS_EMULATED:
            cache.contradicted(model, "tools", "Ollama says it does not support tools")
            log.warning(
                "request %s: Ollama says %s cannot call tools; its tools are described in the"
                " prompt instead (tool emulation)", request_id, model,
            )


def _learn_prompt_size(app: ProxyApp, model: str, raw_estimate: int, actual: int, num_ctx: int) -> None:
    """Calibrate the estimator from Ollama's real count; warn when the prompt was cut."""
    if not actual:
        return
    if looks_truncated(actual, num_ctx):
        log.warning(
            "%s: Ollama evaluated %d prompt tokens with num_ctx %d (estimate %d): the prompt was"
            " probably truncated; raise max_num_ctx or use a model with a longer context",
            model, actual, num_ctx, raw_estimate,
        )
        return
    app.calibration.observe(model, raw_estimate, actual)
