"""The worker adapter: events flow, errors re-raise, early exit cancels, stale steps drop."""

from __future__ import annotations

import threading
import time

import pytest

from studio.events import CancelToken, Finished, Notice, Started, Step
from studio.worker import stream_events


def test_events_then_finished_with_return_value() -> None:
    def work(emit):
        emit(Started(3))
        for i in range(1, 4):
            emit(Step(i, 3))
            time.sleep(0.01)  # let the consumer keep up, so no step is coalesced
        return "done"

    events = list(stream_events(work, CancelToken()))
    assert isinstance(events[0], Started)
    assert [e.index for e in events if isinstance(e, Step)] == [1, 2, 3]
    assert events[-1] == Finished("done")


def test_worker_error_is_reraised_not_swallowed() -> None:
    def work(emit):
        emit(Started(1))
        raise ValueError("boom in worker")

    with pytest.raises(ValueError, match="boom in worker"):
        list(stream_events(work, CancelToken()))


def test_consumer_leaving_early_cancels_the_worker() -> None:
    cancel = CancelToken()
    stopped = threading.Event()

    def work(emit):
        i = 0
        while not cancel.cancelled:
            i += 1
            emit(Step(i, 10_000))
            time.sleep(0.001)
        stopped.set()
        return i

    events = stream_events(work, cancel)
    next(events)
    events.close()  # what Gradio does when the browser cancels the event
    assert cancel.cancelled
    assert stopped.wait(5)


def test_stale_steps_are_dropped_but_notices_are_kept() -> None:
    gate = threading.Event()

    def work(emit):
        for i in range(1, 51):
            emit(Step(i, 50, preview=f"img{i}"))
        emit(Notice("keep me"))
        emit(Step(51, 51, preview="last"))
        gate.set()
        return None

    iterator = stream_events(work, CancelToken())
    gate.wait(5)
    time.sleep(0.05)  # everything is queued before we read
    events = list(iterator)
    steps = [e for e in events if isinstance(e, Step)]
    assert len(steps) < 51 and steps[-1].preview == "last"
    assert Notice("keep me") in events
    assert [e.index for e in steps] == sorted(e.index for e in steps)


def test_cancel_token_is_idempotent() -> None:
    token = CancelToken()
    token.cancel()
    token.cancel()
    assert token.cancelled
