"""Faults while saving: kill -9 mid-save, and a full disk (a real, tiny tmpfs when we may mount one)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from studio.retention import RetentionPolicy
from studio.store import DiskFullError, OutputStore

ROOT = Path(__file__).resolve().parents[2]
KB = 1024

# a saver process: writes ~256 KB results in a loop, reporting each one only once record() returned
SAVER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from studio.store import OutputStore

    store = OutputStore(Path(sys.argv[1]), Path(sys.argv[2]))
    slow = sys.argv[3] == "slow"

    def writer(path):
        with open(path, "wb") as f:
            f.write(os.urandom(128 * 1024))
            if slow:
                print("writing", flush=True)
                time.sleep(30)  # killed here, half-way through the file
            f.write(os.urandom(128 * 1024))

    for i in range(10_000):
        path = store.write("art", ".bin", writer)
        record = store.record("art", f"result {i}", {"i": i}, [path])
        print(f"saved {record.id} {path.name}", flush=True)
    """
)


def run_saver(out: Path, db: Path, mode: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", SAVER, str(out), str(db), mode], stdout=subprocess.PIPE, text=True, env=env
    )


def check_consistent(store: OutputStore, completed: dict[int, str]) -> None:
    """Every completed save is listed with its whole file; nothing else is on disk or in the index."""
    listed = {r.id: r for r in store.history("art", 100_000)}
    assert set(completed) <= set(listed)
    for record_id, name in completed.items():
        assert listed[record_id].files[0].name == name
        assert listed[record_id].files[0].stat().st_size == 256 * KB
    on_disk = {p for p in store.root.rglob("*") if p.is_file()}
    with sqlite3.connect(store.db_path) as db:
        rows = db.execute("SELECT files FROM results").fetchall()
    assert on_disk == {store.root / f for (files,) in rows for f in json.loads(files)}
    assert not [p for p in on_disk if ".partial" in p.name]


@pytest.mark.parametrize("kills", [3])
def test_kill_9_during_saves_keeps_every_completed_result(tmp_path: Path, kills: int) -> None:
    out, db = tmp_path / "out", tmp_path / "history.sqlite"
    completed: dict[int, str] = {}
    for round_ in range(kills):
        proc = run_saver(out, db, "fast")
        for _ in range(15 + 7 * round_):  # kill at a different point of the loop each round
            line = proc.stdout.readline().split()
            completed[int(line[1])] = line[2]
        os.kill(proc.pid, signal.SIGKILL)  # most likely mid-write or mid-commit of the next result
        proc.wait()
        store = OutputStore(out, db)  # the restart
        store.repair()
        check_consistent(store, completed)
    assert len(completed) >= 45


def test_kill_9_half_way_through_a_file_leaves_nothing_listed(tmp_path: Path) -> None:
    out, db = tmp_path / "out", tmp_path / "history.sqlite"
    proc = run_saver(out, db, "slow")
    assert proc.stdout.readline().strip() == "writing"
    assert [p for p in out.rglob("*.partial*")]  # the half-written file is on disk right now
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = OutputStore(out, db)
    assert store.history() == []  # never listed, even before the repair
    assert store.repair() == (0, 1)
    check_consistent(store, {})


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 512 KB file system (tmpfs), so writes fail with ENOSPC as on a full Space disk."""
    mount_point = tmp_path / f"tiny-{uuid.uuid4().hex[:6]}"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount_point)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}); see the RLIMIT_FSIZE test")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_disk_full_on_save_is_a_clear_error_and_nothing_half_written_is_listed(tiny_disk: Path) -> None:
    store = OutputStore(tiny_disk / "out", tiny_disk / "history.sqlite")
    saved = []
    with pytest.raises(DiskFullError, match="disk is full"):
        for i in range(100):  # 100 KB each: the fifth or so no longer fits
            path = store.write("art", ".bin", lambda p: p.write_bytes(os.urandom(100 * KB)))
            saved.append(store.record("art", f"r{i}", {}, [path]).id)
    assert 1 <= len(saved) < 6
    assert [r.id for r in store.history()] == list(reversed(saved))
    assert not list(tiny_disk.rglob("*.partial*"))
    on_disk = {p for p in store.root.rglob("*") if p.is_file()}
    assert on_disk == {f for r in store.history() for f in r.files}
    # space freed by retention (files and rows together): saving works again
    assert store.enforce(RetentionPolicy(max_bytes=1)).removed_records == len(saved)
    path = store.write("art", ".bin", lambda p: p.write_bytes(b"small"))
    assert store.record("art", "after", {}, [path]).files[0].read_bytes() == b"small"


def test_a_file_size_limit_is_reported_as_disk_full_too(tmp_path: Path) -> None:
    """Where mounting is not allowed: RLIMIT_FSIZE in a child process makes the write itself fail."""
    code = textwrap.dedent(
        """
        import os, resource, signal, sys
        from pathlib import Path
        from studio.store import DiskFullError, OutputStore

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write with EFBIG instead of dying
        store = OutputStore(Path(sys.argv[1]), Path(sys.argv[2]))
        store.record("art", "before", {}, [])  # the index exists before the limit
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
        try:
            store.write("art", ".bin", lambda p: p.write_bytes(os.urandom(200 * 1024)))
        except DiskFullError as error:
            print("DiskFullError", error)
        """
    )
    out, db = tmp_path / "out", tmp_path / "h.sqlite"
    done = subprocess.run(
        [sys.executable, "-c", code, str(out), str(db)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert done.stdout.startswith("DiskFullError The disk is full"), done.stderr[-2000:]
    assert not [p for p in out.rglob("*") if p.is_file()]
    assert [r.title for r in OutputStore(out, db).history()] == ["before"]
