"""Which job each browser session is running, so a Stop button can reach its cancel token.

Gradio's `cancels=[event]` stops the event's generator but not a worker thread already inside a
library loop; the token is what the loop checks every step. Keys are Gradio session hashes.

Heavy jobs also pass a fair gate (studio.fairness): sessions take turns on the heavy lane, so one
client that queues many jobs does not starve the next visitor. Light jobs (lane=None) skip it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from studio.events import CancelToken, UserError
from studio.fairness import FairGate

HEAVY_LANE = "heavy"  # big-model work: one job at a time, sessions in turn
MAX_JOBS_PER_SESSION = 4  # heavy jobs one session may have running or waiting at once


class JobBoard:
    def __init__(self, heavy_slots: int = 1, per_session: int = MAX_JOBS_PER_SESSION) -> None:
        self._tokens: dict[str, CancelToken] = {}
        self._lock = threading.Lock()
        self.gates = {HEAVY_LANE: FairGate(heavy_slots)}
        self.per_session = per_session
        self._active: dict[str, int] = {}  # session -> heavy jobs running or waiting

    @contextmanager
    def job(
        self, key: str, lane: str | None = HEAVY_LANE, on_wait: Callable[[int], None] | None = None
    ) -> Iterator[CancelToken]:
        """A fresh token for this session's job, forgotten when the job ends however it ends.

        On a lane, the job first waits its fair turn (Stop while waiting raises Cancelled);
        `on_wait(jobs_ahead)` is called while it waits, e.g. to show a progress label.
        """
        token = CancelToken()
        with self._lock:
            if lane is not None:
                if self._active.get(key, 0) >= self.per_session:
                    raise UserError(
                        f"You already have {self.per_session} jobs running or waiting; "
                        "let one finish, or press Stop, before starting another."
                    )
                self._active[key] = self._active.get(key, 0) + 1
            self._tokens[key] = token
        try:
            if lane is None:
                yield token
            else:
                with self.gates[lane].turn(key, token, on_wait):
                    yield token
        finally:
            if lane is not None:
                with self._lock:
                    self._active[key] -= 1
                    if not self._active[key]:
                        del self._active[key]
            with self._lock:
                if self._tokens.get(key) is token:
                    del self._tokens[key]

    def cancel(self, key: str) -> bool:
        """Cancel the session's running job; harmless when nothing runs or it was already cancelled."""
        with self._lock:
            token = self._tokens.get(key)
        if token is None:
            return False
        token.cancel()
        return True

    def running(self, key: str) -> bool:
        with self._lock:
            return key in self._tokens
