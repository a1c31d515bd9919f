"""The request lifecycle's outcome as the request log and the live view report it
(proxy/protocol/lifecycle.py): each field at its boundary, and the relay's steps that
must change nothing."""

from __future__ import annotations

import dataclasses

import pytest

from proxy.errors import LifecycleError, ShuttingDown, UpstreamError
from proxy.protocol.lifecycle import Lifecycle, Outcome, Phase
from proxy.protocol.plan import Fallback


def test_an_answer_handed_over_is_a_200_even_when_no_status_was_committed_first() -> None:
    lifecycle = Lifecycle()
    lifecycle.answered(200)
    lifecycle.finishing()  # a `stream: false` answer: the end comes with the status
    lifecycle.done()
    assert lifecycle.outcome(committed=False, started=0.0, ended=1.0, output_tokens=3).status == 200


def test_a_client_that_left_before_any_status_is_a_499_and_after_one_a_200() -> None:
    lifecycle = Lifecycle()
    lifecycle.answered(200)
    lifecycle.to(Phase.CANCELLED)
    assert lifecycle.outcome(committed=False, started=0.0, ended=1.0, output_tokens=0).status == 499
    assert lifecycle.outcome(committed=True, started=0.0, ended=1.0, output_tokens=0).status == 200


def test_the_outcome_carries_everything_the_request_log_prints() -> None:
    lifecycle = Lifecycle(host="http://gpu-2:11434")
    lifecycle.answered(400)
    lifecycle.fallbacks.append(Fallback.WITHOUT_THINK)
    lifecycle.restart()
    lifecycle.answered(200)
    lifecycle.fallbacks.append(Fallback.TOOLS_EMULATED)
    lifecycle.first_output(100.25)
    lifecycle.finishing()
    lifecycle.done()
    outcome = lifecycle.outcome(committed=True, started=100.0, ended=103.25, output_tokens=7)
    assert outcome == Outcome(
        status=200, end=Phase.DONE, started=100.0, ended=103.25, first_output_at=100.25, output_tokens=7,
        error=None, cancelled_during=None, host="http://gpu-2:11434", ollama_status=200,
        fallbacks=(Fallback.WITHOUT_THINK, Fallback.TOOLS_EMULATED),
    )
    assert outcome.ttft_ms == 250.0
    assert outcome.duration_ms == 3250.0
    assert outcome.tokens_per_second == 2.3  # 7 / 3.0, to one decimal
    assert not outcome.cancelled and outcome.phase is None
    assert Lifecycle().outcome(committed=False, started=0.0, ended=0.0, output_tokens=0).host is None


def test_times_are_milliseconds_to_one_decimal() -> None:
    outcome = Outcome(status=200, end=Phase.DONE, started=1.0, ended=2.23456, first_output_at=1.01234)
    assert outcome.duration_ms == 1234.6
    assert outcome.ttft_ms == 12.3
    assert dataclasses.replace(outcome, output_tokens=10).tokens_per_second == 8.2  # 10 / 1.22222


def test_a_negative_generation_time_gives_no_rate() -> None:
    outcome = Outcome(status=200, end=Phase.DONE, started=0.0, ended=1.0, first_output_at=1.5, output_tokens=4)
    assert outcome.tokens_per_second is None


def test_a_failure_is_not_a_cancel_and_names_no_phase() -> None:
    outcome = Outcome(status=502, end=Phase.FAILED, started=0.0, ended=1.0, cancelled_during=Phase.PREFILL)
    assert not outcome.cancelled and outcome.phase == "prefill"
    done = Outcome(status=200, end=Phase.DONE, started=0.0, ended=1.0)
    assert not done.cancelled and done.phase is None
    cut = Outcome(status=200, end=Phase.CUT, started=0.0, ended=1.0, cancelled_during=Phase.STREAMING)
    assert cut.cancelled and cut.phase == "shutdown"


def test_steps_that_change_nothing_once_the_state_says_it() -> None:
    streaming = Lifecycle()
    streaming.answered(200)
    streaming.first_output(1.0)
    streaming.answered(201)  # a status seen again while streaming: noted, the state stays
    streaming.restart()  # too late to restart: output went out
    assert streaming.state is Phase.STREAMING and streaming.ollama_status == 201
    cancelled = Lifecycle()
    cancelled.to(Phase.CANCELLED)
    cancelled.first_output(5.0)
    cancelled.finishing()
    cancelled.done()
    cancelled.cut(ShuttingDown())
    assert cancelled.state is Phase.CANCELLED and cancelled.first_output_at is None and cancelled.error is None
    assert not cancelled.responded
    assert cancelled.outcome(committed=False, started=0.0, ended=1.0, output_tokens=0).phase == "waiting for Ollama"


@pytest.mark.parametrize("state", [Phase.WAITING, Phase.PREFILL, Phase.STREAMING, Phase.FINISHING])
def test_a_shutdown_cut_before_the_end_keeps_its_last_word(state: Phase) -> None:
    lifecycle = Lifecycle()
    lifecycle.state = state
    word = ShuttingDown()
    lifecycle.cut(word)
    assert lifecycle.state is Phase.CUT and lifecycle.error is word
    assert lifecycle.cancelled_during is None
    outcome = lifecycle.outcome(committed=state is not Phase.WAITING, started=0.0, ended=1.0, output_tokens=0)
    assert outcome.status == (499 if state is Phase.WAITING else 200)


@pytest.mark.parametrize(
    "state, responded",
    [(Phase.WAITING, False), (Phase.PREFILL, False), (Phase.STREAMING, False), (Phase.FINISHING, False),
     (Phase.DONE, True), (Phase.FAILED, True), (Phase.CUT, True), (Phase.CANCELLED, False)],
)
def test_responded_means_the_end_or_an_error_went_to_the_client(state: Phase, responded: bool) -> None:
    lifecycle = Lifecycle()
    lifecycle.state = state
    assert lifecycle.responded is responded


def test_a_failure_after_output_is_a_200_with_an_error_event() -> None:
    lifecycle = Lifecycle()
    lifecycle.answered(200)
    lifecycle.first_output(0.5)
    error = UpstreamError("Ollama stopped")
    lifecycle.fail(error, status=200)
    outcome = lifecycle.outcome(committed=True, started=0.0, ended=2.0, output_tokens=9)
    assert (outcome.status, outcome.end, outcome.error, outcome.first_output_at) == (200, Phase.FAILED, error, 0.5)
    with pytest.raises(LifecycleError, match="a request cannot go from FAILED to FAILED"):
        lifecycle.fail(error, status=500)


def test_the_done_step_raises_when_the_answer_never_finished() -> None:
    lifecycle = Lifecycle()
    lifecycle.answered(200)
    with pytest.raises(LifecycleError, match="from PREFILL to DONE"):
        lifecycle.done()


def test_phase_names_as_the_log_prints_them() -> None:
    assert [p.value for p in Phase] == [
        "waiting for Ollama", "prefill", "streaming", "finishing", "done", "failed", "cancelled", "shutdown",
    ]


def test_a_request_no_ollama_answered_reports_no_status_from_it() -> None:
    lifecycle = Lifecycle()
    lifecycle.to(Phase.CANCELLED)  # the client left while waiting for Ollama
    outcome = lifecycle.outcome(committed=False, started=0.0, ended=1.0, output_tokens=0)
    assert outcome.ollama_status is None and outcome.status == 499 and outcome.fallbacks == ()
