"""The fair gate: sessions take turns on a lane; Stop while waiting leaves the line."""

from __future__ import annotations

import threading
import time

import pytest

from studio.events import Cancelled, CancelToken, UserError
from studio.fairness import FairGate
from studio.jobs import JobBoard


def run_jobs(gate: FairGate, jobs: list[tuple[str, float]], order: list[str], gap_s: float = 0.02) -> None:
    """Start each (session, seconds) job in its own thread, in the given order, and wait for all."""

    def work(session: str, seconds: float) -> None:
        with gate.turn(session):
            order.append(session)
            time.sleep(seconds)

    threads = []
    for session, seconds in jobs:
        thread = threading.Thread(target=work, args=(session, seconds))
        thread.start()
        threads.append(thread)
        time.sleep(gap_s)  # arrival order is the list order
    for thread in threads:
        thread.join(timeout=30)


def test_a_second_client_is_served_after_one_job_of_a_busy_client() -> None:
    gate, order = FairGate(1), []
    run_jobs(gate, [("busy", 0.15)] * 5 + [("visitor", 0.01)], order)
    assert order.index("visitor") == 1, order  # FIFO would make it wait for all five
    assert order.count("busy") == 5


def test_three_sessions_alternate() -> None:
    gate, order = FairGate(1), []
    run_jobs(gate, [("a", 0.1)] * 3 + [("b", 0.05)] * 3 + [("c", 0.05)] * 3, order)
    # after the first "a" (which found the gate free) each round serves every waiting session once
    assert order[:4] == ["a", "b", "c", "a"], order
    assert sorted(order) == ["a"] * 3 + ["b"] * 3 + ["c"] * 3


def test_two_slots_admit_two_holders_at_once() -> None:
    gate, inside, peak = FairGate(2), [0], [0]
    lock = threading.Lock()

    def work() -> None:
        with gate.turn(threading.current_thread().name):
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            time.sleep(0.1)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=work, name=f"s{i}") for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert peak[0] == 2


def test_stop_while_waiting_leaves_the_line_and_the_next_job_runs() -> None:
    gate = FairGate(1)
    release, entered = threading.Event(), threading.Event()

    def holder() -> None:
        with gate.turn("a"):
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    entered.wait(5)
    token = CancelToken()
    timer = threading.Timer(0.2, token.cancel)
    timer.start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        with gate.turn("b", token):
            pass
    assert time.monotonic() - started < 2 and gate.waiting() == 0
    release.set()
    thread.join(5)
    with gate.turn("c"):
        pass  # the gate is free again


def test_job_board_waits_on_the_heavy_lane_but_not_without_one() -> None:
    board = JobBoard()
    seen: list[int] = []
    with board.job("a"):
        done = threading.Event()

        outcome: list[str] = []

        def second() -> None:
            try:
                with board.job("b", on_wait=seen.append):
                    done.set()
            except Cancelled:
                outcome.append("cancelled")

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        assert not done.is_set() and seen and seen[-1] == 0  # waiting, nobody ahead of it
        with board.job("c", lane=None):
            pass  # a light job does not wait
        assert board.cancel("b")  # Stop reaches a waiting job too
        thread.join(5)
    assert not done.is_set() and outcome == ["cancelled"]


def test_a_session_may_have_only_a_few_heavy_jobs_at_once() -> None:
    board, outcome = JobBoard(per_session=2), []
    with board.job("a"):

        def second() -> None:
            with board.job("a"):
                outcome.append("ran")

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.2)  # the second job of "a" now waits at the gate
        with pytest.raises(UserError, match="already have 2 jobs running or waiting"):
            with board.job("a"):
                pass
        with board.job("a", lane=None):
            pass  # light jobs are not counted
    thread.join(5)
    assert outcome == ["ran"]
    with board.job("a"):
        pass  # the count went back down
