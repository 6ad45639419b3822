"""Turn a callback-style library loop into an event iterator.

Library loops (the diffusers `callback_on_step_end`, transformers streamers) only offer callbacks.
`stream_events` runs such a loop in a worker thread; the loop calls `emit(event)`, which puts the
event on a queue; the caller iterates the queue. Three guarantees:

1. An error raised in the worker is re-raised in the caller (never swallowed, never a timeout).
2. If the caller stops iterating (Gradio cancelled the event, the client went away), the cancel
   token is set, so the worker stops at its next step instead of running on unseen.
3. Stale previews are dropped: when several Steps are waiting, only the newest is yielded.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from studio.events import CancelToken, Event, Finished, Step

Emit = Callable[[Event], None]


@dataclass(frozen=True)
class _Done:
    result: Any


@dataclass(frozen=True)
class _Failed:
    error: BaseException


def stream_events(
    work: Callable[[Emit], Any],
    cancel: CancelToken,
    *,
    drop_stale_steps: bool = True,
    join_timeout_s: float = 30.0,
) -> Iterator[Event]:
    """Run `work(emit)` in a thread and yield what it emits, then Finished(its return value)."""
    events: queue.Queue[Any] = queue.Queue()

    def target() -> None:
        try:
            events.put(_Done(work(events.put)))
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller below
            events.put(_Failed(error))

    thread = threading.Thread(target=target, name="studio-worker", daemon=True)
    thread.start()
    finished = False
    try:
        while True:
            item = events.get()
            # 1. coalesce a run of waiting Steps into the newest one
            if drop_stale_steps and isinstance(item, Step):
                item = _newest_step(events, item)
            if isinstance(item, _Failed):
                finished = True
                raise item.error
            if isinstance(item, _Done):
                finished = True
                yield Finished(item.result)
                return
            yield item
    finally:
        # 2. the consumer went away early: tell the worker to stop, and wait for it briefly
        if not finished:
            cancel.cancel()
        thread.join(timeout=join_timeout_s)


def _newest_step(events: queue.Queue[Any], step: Step) -> Any:
    """Skip Steps already superseded; stop at the first non-Step so nothing else is lost."""
    while True:
        try:
            peeked = events.queue[0]  # queue.Queue has no peek; reading .queue[0] is safe under GIL
        except IndexError:
            return step
        if not isinstance(peeked, Step) or (step.preview is not None and peeked.preview is None):
            return step
        step = events.get_nowait()
