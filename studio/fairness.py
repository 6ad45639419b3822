"""A fair gate for heavy jobs: sessions take turns, so one busy client cannot starve the others.

Gradio's queue is first-in first-out per concurrency id: a client that submits ten jobs puts all ten
ahead of the next visitor. The app therefore admits several heavy events at once and lets them
through this gate one at a time (per lane), choosing round-robin between sessions: the waiting job
whose session was served least recently goes next, ties broken by arrival. A waiting job whose
cancel token is set (Stop) leaves the line at once.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from studio.events import Cancelled, CancelToken

POLL_S = 0.1  # how often a waiting job looks at its cancel token


@dataclass(order=True)
class _Ticket:
    served_before: int  # the session's last turn (0 = never served): smaller goes first
    arrival: int  # tie-break: first come, first served
    session: str = field(compare=False)


class FairGate:
    """At most `slots` holders at a time; waiting sessions are served round-robin."""

    def __init__(self, slots: int = 1) -> None:
        if slots < 1:
            raise ValueError("a gate needs at least one slot")
        self.slots = slots
        self._holders = 0
        self._waiting: list[_Ticket] = []
        self._last_turn: dict[str, int] = {}  # session -> the turn number it last got
        self._turns = itertools.count(1)
        self._arrivals = itertools.count()
        self._cond = threading.Condition()

    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    def ahead_of(self, session: str) -> int:
        """How many waiting jobs would go before this session's next one (for a progress label)."""
        with self._cond:
            mine = [t for t in self._waiting if t.session == session]
            if not mine:
                return 0
            first = min(mine)
            return sum(1 for t in self._waiting if t < first)

    @contextmanager
    def turn(
        self, session: str, cancel: CancelToken | None = None, on_wait: Callable[[int], None] | None = None
    ) -> Iterator[None]:
        """Wait for this session's turn (raises Cancelled if `cancel` is set while waiting), then hold a slot."""
        with self._cond:
            ticket = _Ticket(self._last_turn.get(session, 0), next(self._arrivals), session)
            self._waiting.append(ticket)
            try:
                # 1. wait until a slot is free AND this ticket is the fairest waiting one
                while self._holders >= self.slots or min(self._waiting) is not ticket:
                    if cancel is not None and cancel.cancelled:
                        raise Cancelled("stopped while waiting for a turn")
                    if on_wait is not None:
                        on_wait(sum(1 for t in self._waiting if t < ticket))
                    self._cond.wait(POLL_S)
            finally:
                self._waiting.remove(ticket)
                self._cond.notify_all()
            # 2. take the slot and remember the turn, so this session queues behind the others next time
            self._holders += 1
            self._last_turn[session] = next(self._turns)
            self._reorder(session)
        try:
            yield
        finally:
            with self._cond:
                self._holders -= 1
                self._cond.notify_all()

    def _reorder(self, session: str) -> None:
        """The session's other waiting tickets now rank by its newest turn."""
        for ticket in self._waiting:
            if ticket.session == session:
                ticket.served_before = self._last_turn[session]
