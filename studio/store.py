"""The output store: result files under the output dir plus an SQLite index that survives restart.

Layout:  <output_dir>/<task>/<YYYY-MM-DD>/<HHMMSS>-<random>.<ext>   and the index at `db_path`
(`<data_dir>/history.sqlite` in the app), never inside the output dir, so it is never served.

Save order is file first, then row: a file is written to a temporary name, flushed to disk and renamed;
only then is its row committed (SQLite in WAL mode, synchronous=FULL). A crash at any point leaves
either a complete result with its row, or a file without a row that `repair()` removes at the next
start. Removal (retention, repair) goes the other way: row first, then files. History lists a result
only while all its files exist.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from studio.events import UserError
from studio.retention import DAY_S, RetentionPolicy, remove_empty_dirs

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    task    TEXT NOT NULL,
    title   TEXT NOT NULL,
    params  TEXT NOT NULL,
    files   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_task ON results(task, created);
"""
# columns added after the first release; an older database gains them on open
_ADDED_COLUMNS = {
    "owner": "ALTER TABLE results ADD COLUMN owner TEXT NOT NULL DEFAULT ''",
    "pinned": "ALTER TABLE results ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0",
}
_COLUMNS = "id, created, task, title, params, files, owner, pinned"
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_RESULT_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}/\d{6}-[^/]+$")  # <date>/<HHMMSS>-<random or pid-n>.<ext>
LEGACY_DB_NAME = "history.sqlite"  # where older versions kept the index: inside the served output dir


class DiskFullError(UserError):
    """The disk (or quota) is full: the result was not saved and nothing half-written was kept."""


@dataclass(frozen=True)
class Record:
    id: int
    created: float  # unix time
    task: str
    title: str  # short human label (the prompt, the style, ...)
    params: dict[str, Any] = field(default_factory=dict)  # everything needed to reproduce it
    files: tuple[Path, ...] = ()  # absolute paths
    owner: str = ""  # who made it: "user:<name>" with auth, else "session:<hash>"; "" = unclaimed
    pinned: bool = False  # pinned results are never removed by retention

    @property
    def when(self) -> str:
        return datetime.fromtimestamp(self.created).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class RetentionReport:
    removed_records: int
    removed_bytes: int
    kept_bytes: int  # size of every result left, pinned included


class OutputStore:
    def __init__(
        self, root: Path, db_path: Path | None = None, retention: RetentionPolicy | None = None
    ) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        # default: beside the output dir, never inside it (the output dir's files may be served)
        self.db_path = Path(db_path or self.root.with_name(self.root.name + "-history.sqlite")).resolve()
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.retention = retention or RetentionPolicy()
        self._lock = threading.Lock()
        self._migrate_legacy_db()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")  # readers never block the writer; crash-safe commits
            db.executescript(_SCHEMA)
            present = {row[1] for row in db.execute("PRAGMA table_info(results)")}
            for column, statement in _ADDED_COLUMNS.items():
                if column not in present:
                    db.execute(statement)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """One connection per operation: committed on success, rolled back on error, always closed."""
        db = sqlite3.connect(self.db_path, timeout=10)
        try:
            db.execute("PRAGMA synchronous=FULL")  # a committed row survives power loss, not just kill -9
            with db:
                yield db
        finally:
            db.close()

    def _migrate_legacy_db(self) -> None:
        """Move an index left inside the output dir by an older version out of the served folder."""
        legacy = self.root / LEGACY_DB_NAME
        if not legacy.exists() or legacy.resolve() == self.db_path:
            return
        with sqlite3.connect(legacy) as old:
            old.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # fold any WAL into the main file first
        old.close()
        target = self.db_path
        if target.exists():  # both exist: keep the current one, park the old one outside the output dir
            target = self.db_path.with_name(f"{self.db_path.stem}-legacy-{int(time.time())}.sqlite")
            log.warning("an older history database was found in %s; moved to %s", legacy, target)
        shutil.move(str(legacy), target)
        for suffix in ("-wal", "-shm"):
            Path(str(legacy) + suffix).unlink(missing_ok=True)
        log.info("moved the history database out of the output folder to %s", target)

    # -- files ---------------------------------------------------------------------------------
    def new_path(self, task: str, suffix: str) -> Path:
        """A fresh file path for a result of `task` (the folder is created); the name is unguessable."""
        now = datetime.now()
        folder = self.root / _safe(task) / now.strftime("%Y-%m-%d")
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{now.strftime('%H%M%S')}-{secrets.token_urlsafe(12)}{suffix}"

    def write(self, task: str, suffix: str, writer: Callable[[Path], None]) -> Path:
        """Reserve a path, let `writer(tmp_path)` fill it, flush it to disk, then move it into place.

        A full disk raises DiskFullError (a UserError with a clear message); nothing is left behind.
        """
        final = self.new_path(task, suffix)
        tmp = final.with_name(final.stem + ".partial" + final.suffix)
        try:
            writer(tmp)
            _fsync_file(tmp)
            os.replace(tmp, final)
        except OSError as error:
            if error.errno in _NO_SPACE:
                raise DiskFullError(_DISK_FULL) from error
            raise
        finally:
            tmp.unlink(missing_ok=True)
        return final

    # -- index ---------------------------------------------------------------------------------
    def record(
        self, task: str, title: str, params: dict[str, Any], files: list[Path], owner: str = ""
    ) -> Record:
        """Index finished files (already written with `write`). Then apply the retention policy."""
        created = time.time()
        rel = [str(Path(f).resolve().relative_to(self.root)) for f in files]
        try:
            with self._lock, self._connect() as db:
                cur = db.execute(
                    "INSERT INTO results (created, task, title, params, files, owner) VALUES (?, ?, ?, ?, ?, ?)",
                    (created, task, title, json.dumps(params, default=str), json.dumps(rel), owner),
                )
                row_id = int(cur.lastrowid)
        except sqlite3.OperationalError as error:
            # the row did not commit: its files must not stay behind without it
            for f in files:
                Path(f).unlink(missing_ok=True)
            if "full" in str(error).lower():
                raise DiskFullError(_DISK_FULL) from error
            raise
        record = Record(row_id, created, task, title, params, tuple(self.root / r for r in rel), owner)
        if self.retention.active:
            self.enforce(protect={row_id})
        return record

    def history(self, task: str | None = None, limit: int = 50, owner: str | None = None) -> list[Record]:
        """Newest first; only results whose files all exist. `owner=None` lists everyone's."""
        query = f"SELECT {_COLUMNS} FROM results"
        where, args = [], []
        if task:
            where.append("task = ?")
            args.append(task)
        if owner is not None:
            where.append("owner = ?")
            args.append(owner)
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY id DESC LIMIT ? OFFSET ?"
        found: list[Record] = []
        offset = 0
        with self._connect() as db:
            while len(found) < limit:
                rows = db.execute(query, (*args, limit, offset)).fetchall()
                if not rows:
                    break
                offset += len(rows)
                found += [r for r in map(self._to_record, rows) if r is not None]
        return found[:limit]

    def get(self, record_id: int, owner: str | None = None) -> Record | None:
        """The record if it exists, its files exist and (when `owner` is given) it belongs to `owner`."""
        with self._connect() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM results WHERE id = ?", (record_id,)).fetchone()
        record = self._to_record(row) if row else None
        if record is None or (owner is not None and record.owner != owner):
            return None
        return record

    def claim(self, record_ids: Iterable[int], owner: str) -> int:
        """Give unclaimed records to `owner` (never takes a record from another owner)."""
        ids = [int(i) for i in record_ids]
        if not ids or not owner:
            return 0
        with self._lock, self._connect() as db:
            cur = db.executemany(
                "UPDATE results SET owner = ? WHERE id = ? AND owner = ''", [(owner, i) for i in ids]
            )
            return cur.rowcount

    def set_pinned(self, record_id: int, pinned: bool, owner: str | None = None) -> bool:
        """Pin (keep forever) or unpin a result; with `owner`, only that owner's. True if it changed."""
        query, args = "UPDATE results SET pinned = ? WHERE id = ?", [int(bool(pinned)), int(record_id)]
        if owner is not None:
            query += " AND owner = ?"
            args.append(owner)
        with self._lock, self._connect() as db:
            return db.execute(query, args).rowcount > 0

    def _to_record(self, row: tuple[Any, ...]) -> Record | None:
        row_id, created, task, title, params, files, owner, pinned = row
        paths = tuple(self.root / f for f in json.loads(files))
        if not all(p.exists() for p in paths):
            return None  # a file is gone: the result is not listed (retention/repair drop the row)
        return Record(row_id, created, task, title, json.loads(params), paths, owner, bool(pinned))

    # -- bounded disk --------------------------------------------------------------------------
    def enforce(self, policy: RetentionPolicy | None = None, protect: Iterable[int] = ()) -> RetentionReport:
        """Remove the oldest unpinned results (row, then files) until the policy holds.

        Results older than `keep_days` go; then, while unpinned results exceed `max_bytes`, the oldest
        go. Pinned results and the ids in `protect` (the result being saved) are never removed.
        """
        policy = policy or self.retention
        protected = set(protect)
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, created, files, pinned FROM results ORDER BY created, id"
            ).fetchall()
        sized = [(i, c, [self.root / f for f in json.loads(fs)], bool(p)) for i, c, fs, p in rows]
        sizes = {i: sum(_size(f) for f in files) for i, _, files, _ in sized}
        unpinned_total = sum(sizes[i] for i, _, _, pinned in sized if not pinned)
        cutoff = time.time() - policy.keep_days * DAY_S if policy.keep_days > 0 else None
        victims = []
        for row_id, created, files, pinned in sized:
            if pinned or row_id in protected:
                continue
            too_old = cutoff is not None and created < cutoff
            too_big = policy.max_bytes > 0 and unpinned_total > policy.max_bytes
            if too_old or too_big:
                victims.append((row_id, files))
                unpinned_total -= sizes[row_id]
        removed_bytes = self._remove(victims)
        kept = sum(sizes.values()) - removed_bytes
        if victims:
            log.info("retention: removed %d results (%.1f MB)", len(victims), removed_bytes / 2**20)
        return RetentionReport(len(victims), removed_bytes, kept)

    def _remove(self, victims: list[tuple[int, list[Path]]]) -> int:
        """Delete rows (one commit), then their files; a crash in between leaves only orphan files."""
        if not victims:
            return 0
        with self._lock, self._connect() as db:
            db.executemany("DELETE FROM results WHERE id = ?", [(i,) for i, _ in victims])
        removed = 0
        for _, files in victims:
            for f in files:
                removed += _size(f)
                f.unlink(missing_ok=True)
        self._remove_empty_dirs()
        return removed

    def repair(self) -> tuple[int, int]:
        """At start-up: drop rows whose files are gone, and files (and .partial leftovers) with no row.

        Call only while no save is running (the app calls it before serving). Returns (rows, files) removed.
        """
        with self._connect() as db:
            rows = db.execute("SELECT id, files FROM results").fetchall()
        referenced: set[Path] = set()
        broken: list[tuple[int, list[Path]]] = []
        for row_id, files in rows:
            paths = [self.root / f for f in json.loads(files)]
            if all(p.exists() for p in paths):
                referenced.update(paths)
            else:
                broken.append((row_id, paths))
        self._remove(broken)
        orphans = 0
        for task_dir in self._task_dirs():
            for path in task_dir.glob("*/*"):
                # only files shaped like our results (<task>/<date>/<HHMMSS>-...): never a stranger's file
                if (
                    path not in referenced
                    and path.is_file()
                    and _RESULT_NAME.match(path.parent.name + "/" + path.name)
                ):
                    path.unlink(missing_ok=True)
                    orphans += 1
        self._remove_empty_dirs()
        if broken or orphans:
            log.info(
                "history repair: %d rows without files, %d files without rows removed", len(broken), orphans
            )
        return len(broken), orphans

    def results_bytes(self) -> int:
        """Size of every result file under the output dir (the upload cache excluded)."""
        return sum(_size(p) for d in self._task_dirs() for p in d.rglob("*") if p.is_file())

    def count(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def _task_dirs(self) -> list[Path]:
        """Result folders: every sub-folder except hidden ones (the upload cache is `.gradio`)."""
        return [p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]

    def _remove_empty_dirs(self) -> None:
        for task_dir in self._task_dirs():
            remove_empty_dirs(task_dir)


_DISK_FULL = (
    "The disk is full, so this result could not be saved (nothing half-written was kept). "
    "Free some space, or lower STUDIO_KEEP_DAYS / STUDIO_MAX_OUTPUT_GB so old results are removed."
)


def _fsync_file(path: Path) -> None:
    """Flush a written file to disk, so the rename never publishes a file whose bytes are still in cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "misc"
