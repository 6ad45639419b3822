"""Typed progress events, the cancel token and the user-facing error.

A pipeline is a generator:  Started(total) -> Step(...)* -> Finished(result), with Notice events
anywhere for things the user should read (a fallback, a truncation, a clamp).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Started:
    total: int  # number of Steps to expect (across a whole batch)
    label: str = ""  # what is running, e.g. "text-to-image · DDIM"


@dataclass(frozen=True)
class Step:
    index: int  # 1-based, counts up to Started.total
    total: int
    preview: Any = None  # a PIL image, a text delta, ... or None
    eta_s: float | None = None  # seconds to go, from the mean step time so far
    info: dict[str, Any] = field(default_factory=dict)  # e.g. tokens/s


@dataclass(frozen=True)
class Notice:
    message: str  # shown to the user as a warning/info toast
    level: str = "warning"  # "info" | "warning"


@dataclass(frozen=True)
class Finished:
    result: Any  # the pipeline's result dataclass


Event = Started | Step | Notice | Finished


class UserError(Exception):
    """A problem with the request that the user can fix; pages show it as gr.Error."""


class Cancelled(Exception):
    """Raised when a job stops because its cancel token was set."""


class CancelToken:
    """A threading.Event with a name; set it from any thread, check it every step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("stopped by user")


class EtaClock:
    """Mean-step-time ETA, as A1111 and tqdm show it."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.start = time.perf_counter()

    def eta(self, done: int) -> float | None:
        if done <= 0:
            return None
        elapsed = time.perf_counter() - self.start
        return elapsed / done * max(self.total - done, 0)
