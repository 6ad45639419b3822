"""The output store: result files under the output dir plus an SQLite index that survives restart.

Layout:  <output_dir>/<task>/<YYYY-MM-DD>/<HHMMSS>-<n>.<ext>   and   <output_dir>/history.sqlite
Files are written to a temporary name and renamed, so a crash never leaves a half-written result
that the index points to.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class Record:
    id: int
    created: float  # unix time
    task: str
    title: str  # short human label (the prompt, the style, ...)
    params: dict[str, Any] = field(default_factory=dict)  # everything needed to reproduce it
    files: tuple[Path, ...] = ()  # absolute paths

    @property
    def when(self) -> str:
        return datetime.fromtimestamp(self.created).strftime("%Y-%m-%d %H:%M:%S")


class OutputStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "history.sqlite"
        self._lock = threading.Lock()
        self._counter = 0
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.db_path, timeout=10)

    # -- files ---------------------------------------------------------------------------------
    def new_path(self, task: str, suffix: str) -> Path:
        """A fresh, unique file path for a result of `task` (the folder is created)."""
        now = datetime.now()
        folder = self.root / _safe(task) / now.strftime("%Y-%m-%d")
        folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._counter += 1
            n = self._counter
        return folder / f"{now.strftime('%H%M%S')}-{os.getpid()}-{n:04d}{suffix}"

    def write(self, task: str, suffix: str, writer: Callable[[Path], None]) -> Path:
        """Reserve a path, let `writer(tmp_path)` fill it, then atomically move it into place."""
        final = self.new_path(task, suffix)
        tmp = final.with_name(final.stem + ".partial" + final.suffix)
        try:
            writer(tmp)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return final

    # -- index ---------------------------------------------------------------------------------
    def record(self, task: str, title: str, params: dict[str, Any], files: list[Path]) -> Record:
        created = time.time()
        rel = [str(Path(f).resolve().relative_to(self.root)) for f in files]
        with self._lock, self._connect() as db:
            cur = db.execute(
                "INSERT INTO results (created, task, title, params, files) VALUES (?, ?, ?, ?, ?)",
                (created, task, title, json.dumps(params, default=str), json.dumps(rel)),
            )
            row_id = int(cur.lastrowid)
        return Record(row_id, created, task, title, params, tuple(self.root / r for r in rel))

    def history(self, task: str | None = None, limit: int = 50) -> list[Record]:
        """Newest first. Files deleted by hand are skipped, not errors."""
        query = "SELECT id, created, task, title, params, files FROM results"
        args: tuple[Any, ...] = ()
        if task:
            query += " WHERE task = ?"
            args = (task,)
        query += " ORDER BY id DESC LIMIT ?"
        with self._connect() as db:
            rows = db.execute(query, (*args, limit)).fetchall()
        return [self._to_record(row) for row in rows]

    def get(self, record_id: int) -> Record | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT id, created, task, title, params, files FROM results WHERE id = ?", (record_id,)
            ).fetchone()
        return self._to_record(row) if row else None

    def _to_record(self, row: tuple[Any, ...]) -> Record:
        row_id, created, task, title, params, files = row
        paths = tuple(p for p in (self.root / f for f in json.loads(files)) if p.exists())
        return Record(row_id, created, task, title, json.loads(params), paths)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "misc"
