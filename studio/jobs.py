"""Which job each browser session is running, so a Stop button can reach its cancel token.

Gradio's `cancels=[event]` stops the event's generator but not a worker thread already inside a
library loop; the token is what the loop checks every step. Keys are Gradio session hashes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from studio.events import CancelToken


class JobBoard:
    def __init__(self) -> None:
        self._tokens: dict[str, CancelToken] = {}
        self._lock = threading.Lock()

    @contextmanager
    def job(self, key: str) -> Iterator[CancelToken]:
        """A fresh token for this session's job, forgotten when the job ends however it ends."""
        token = CancelToken()
        with self._lock:
            self._tokens[key] = token
        try:
            yield token
        finally:
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
