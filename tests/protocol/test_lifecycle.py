"""The request lifecycle's table (proxy/protocol/lifecycle.py): every legal transition is
taken, every other one raises; the outcome reports what a user sees."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from proxy.errors import ShuttingDown, UpstreamError
from proxy.errors import LifecycleError
from proxy.protocol.lifecycle import TRANSITIONS, Lifecycle, Outcome, Phase
from proxy.protocol.plan import Fallback

LEGAL = [(a, b) for a, targets in TRANSITIONS.items() for b in targets]
ILLEGAL = [(a, b) for a, b in itertools.product(Phase, Phase) if b not in TRANSITIONS[a]]


def at(state: Phase) -> Lifecycle:
    lifecycle = Lifecycle()
    lifecycle.state = state
    return lifecycle


def test_the_table_names_every_state():
    assert set(TRANSITIONS) == set(Phase)
    ends = {Phase.DONE, Phase.FAILED, Phase.CANCELLED, Phase.CUT}
    assert {s for s, targets in TRANSITIONS.items() if not targets} == ends
    # every state but the ends can fail, be cancelled or be cut
    for state in set(Phase) - ends:
        assert {Phase.FAILED, Phase.CANCELLED, Phase.CUT} <= TRANSITIONS[state]


@pytest.mark.parametrize("old, new", LEGAL, ids=[f"{a.name}->{b.name}" for a, b in LEGAL])
def test_every_legal_transition(old, new):
    lifecycle = at(old)
    lifecycle.to(new)
    assert lifecycle.state is new
    assert lifecycle.cancelled_during is (old if new is Phase.CANCELLED else None)


@pytest.mark.parametrize("old, new", ILLEGAL, ids=[f"{a.name}->{b.name}" for a, b in ILLEGAL])
def test_every_illegal_transition_raises_and_changes_nothing(old, new):
    lifecycle = at(old)
    with pytest.raises(LifecycleError, match=f"from {old.name} to {new.name}"):
        lifecycle.to(new)
    assert lifecycle.state is old


def test_a_whole_answer():
    lifecycle = Lifecycle(host="http://a")
    lifecycle.answered(200)
    assert lifecycle.state is Phase.PREFILL and not lifecycle.responded
    lifecycle.first_output(12.5)
    lifecycle.finishing()
    lifecycle.done()
    lifecycle.done()  # said again after the drain: once is enough
    assert lifecycle.responded
    outcome = lifecycle.outcome(committed=True, started=10.0, ended=14.5, output_tokens=40)
    assert (outcome.status, outcome.end, outcome.cancelled, outcome.phase) == (200, Phase.DONE, False, None)
    assert outcome.ttft_ms == 2500.0 and outcome.duration_ms == 4500.0 and outcome.tokens_per_second == 20.0
    assert outcome.host == "http://a" and outcome.ollama_status == 200
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.status = 500  # type: ignore[misc]


def test_a_retry_before_output_waits_for_ollama_again():
    lifecycle = Lifecycle()
    lifecycle.answered(500)
    lifecycle.restart()
    assert lifecycle.state is Phase.WAITING
    lifecycle.restart()  # the next host, already waiting: nothing to do
    assert lifecycle.state is Phase.WAITING
    lifecycle.answered(200)
    lifecycle.answered(200)  # a busy retry answered again: still prefill
    assert lifecycle.state is Phase.PREFILL


@pytest.mark.parametrize(
    "steps, phase",
    [((), "waiting for Ollama"), (("answered",), "prefill"), (("answered", "output"), "streaming"),
     (("answered", "output", "finishing"), "finishing")],
)
def test_a_cancel_reports_the_phase_it_came_in(steps, phase):
    lifecycle = Lifecycle()
    for step in steps:
        {"answered": lambda: lifecycle.answered(200), "output": lambda: lifecycle.first_output(1.0),
         "finishing": lifecycle.finishing}[step]()
    lifecycle.to(Phase.CANCELLED)
    # what the relay still does before its cancellation arrives changes nothing
    lifecycle.first_output(2.0) if not steps else lifecycle.finishing()
    lifecycle.done()
    outcome = lifecycle.outcome(committed=bool(steps), started=0.0, ended=3.0, output_tokens=0)
    assert outcome.cancelled and outcome.phase == phase and outcome.end is Phase.CANCELLED
    assert outcome.status == (200 if steps else 499)  # 499: the client left before any status


def test_a_failure_keeps_the_status_it_was_given_with():
    lifecycle = Lifecycle()
    lifecycle.answered(404)
    error = UpstreamError("gone")
    lifecycle.fail(error, status=502)
    outcome = lifecycle.outcome(committed=True, started=0.0, ended=1.0, output_tokens=0)  # fail() then committed
    assert outcome.status == 502 and outcome.error is error and not outcome.cancelled
    with pytest.raises(LifecycleError):
        lifecycle.first_output(1.0)  # nothing follows an end


def test_the_shutdown_cut_is_a_cancel_named_shutdown_and_never_follows_an_end():
    lifecycle = Lifecycle()
    lifecycle.cut(ShuttingDown())
    assert lifecycle.state is Phase.CUT and lifecycle.responded
    outcome = lifecycle.outcome(committed=False, started=0.0, ended=1.0, output_tokens=0)
    assert outcome.cancelled and outcome.phase == "shutdown" and isinstance(outcome.error, ShuttingDown)
    done = at(Phase.DONE)
    done.cut(ShuttingDown())
    assert done.state is Phase.DONE and done.error is None


def test_rates_need_output_and_time():
    base = Outcome(status=200, end=Phase.DONE, started=1.0, ended=2.0)
    assert base.ttft_ms is None and base.tokens_per_second is None and base.duration_ms == 1000.0
    assert dataclasses.replace(base, first_output_at=2.0, output_tokens=5).tokens_per_second is None
    assert dataclasses.replace(base, first_output_at=1.5, output_tokens=0).tokens_per_second is None
    assert dataclasses.replace(base, first_output_at=1.5, output_tokens=5).tokens_per_second == 10.0
    used = dataclasses.replace(base, fallbacks=(Fallback.WITHOUT_THINK,))
    assert used.fallbacks == (Fallback.WITHOUT_THINK,)
