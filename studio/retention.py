"""Bounded disk: policies for results and the upload cache, folder sizes, and model caches.

A Space runs for weeks on a fixed disk. Three things grow without bound unless something removes them:
the upload cache (every file a stranger sends), the results (files plus History rows) and the model
caches under the data folder. This module measures them and sweeps the upload cache; result retention
itself lives in `OutputStore.enforce` because file and row must go together.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

GB = 1024**3
MB = 1024**2
DAY_S = 86400.0
NOT_CACHES = {"models", "history"}  # data-dir folders that are not caches: the models/ parent, the History


@dataclass(frozen=True)
class RetentionPolicy:
    keep_days: float = 0.0  # results older than this are removed (0 = no age limit); pinned ones stay
    max_bytes: int = 0  # total size of unpinned results; the oldest go first above it (0 = no limit)

    @property
    def active(self) -> bool:
        return self.keep_days > 0 or self.max_bytes > 0

    def describe(self) -> str:
        age = f"{self.keep_days:g} days" if self.keep_days > 0 else "no age limit"
        size = f"{self.max_bytes / GB:.3g} GB" if self.max_bytes > 0 else "no size limit"
        return f"results kept {age}, {size} (pinned results always kept)"


@dataclass(frozen=True)
class CachePolicy:
    max_bytes: int  # the upload cache is swept down to this size, oldest files first (0 = no limit)
    max_age_s: float  # files older than this are removed (0 = no age limit)
    big_upload_bytes: int  # uploads at least this big are removed as soon as their job ends

    def describe(self) -> str:
        return (
            f"upload cache ≤ {self.max_bytes / MB:.0f} MB, files kept ≤ {self.max_age_s / 3600:g} h, "
            f"uploads ≥ {self.big_upload_bytes / MB:.0f} MB removed after their job"
        )


@dataclass(frozen=True)
class SweepReport:
    removed_files: int
    removed_bytes: int
    remaining_bytes: int


@dataclass(frozen=True)
class CacheFolder:
    name: str  # folder name under the data dir (models/<name> or a top-level folder)
    path: Path
    bytes: int
    in_use: bool  # a loaded model reads it; never cleared


def _charged_bytes(stat: os.stat_result) -> int:
    """Bytes a file really costs: a hard link to a result costs nothing while the result exists."""
    return 0 if stat.st_nlink > 1 else stat.st_size


def folder_bytes(folder: Path) -> int:
    """Total size of the regular files under `folder` (0 if it does not exist)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += _charged_bytes(os.lstat(os.path.join(root, name)))
            except FileNotFoundError:
                continue  # removed while we walked
    return total


def disk_bytes(folder: Path) -> int:
    """What the files under `folder` really occupy: each file counted once, however many links it has."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                stat = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_size
    return total


def sweep_cache(folder: Path, policy: CachePolicy, now: float | None = None) -> SweepReport:
    """Remove cache files older than the age limit, then the oldest until the folder fits its bound.

    Age is the file's ctime, which Gradio refreshes when it hands a cached file out again. Empty
    folders left behind (Gradio keeps one folder per file hash) are removed too.
    """
    now = time.time() if now is None else now
    entries: list[tuple[float, int, str]] = []  # (ctime, charged bytes, path)
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            try:
                stat = os.lstat(path)
            except FileNotFoundError:
                continue
            entries.append((stat.st_ctime, _charged_bytes(stat), path))
    entries.sort()  # oldest first
    total = sum(size for _, size, _ in entries)
    removed = removed_bytes = 0
    for ctime, size, path in entries:
        too_old = policy.max_age_s > 0 and now - ctime > policy.max_age_s
        too_big = policy.max_bytes > 0 and total > policy.max_bytes
        if not (too_old or too_big):
            break  # sorted oldest first: nothing later is older, and the size already fits
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        total -= size
        removed += 1
        removed_bytes += size
    remove_empty_dirs(folder, min_age_s=60)
    if removed:
        log.info("upload cache sweep: removed %d files (%.1f MB)", removed, removed_bytes / MB)
    return SweepReport(removed, removed_bytes, total)


def remove_empty_dirs(folder: Path, min_age_s: float = 0.0) -> None:
    """Remove empty sub-folders of `folder` (deepest first); `folder` itself is kept.

    `min_age_s` spares folders changed recently: Gradio creates a folder, then writes into it.
    """
    top = Path(folder).resolve()
    now = time.time()
    for root, _dirs, _files in os.walk(top, topdown=False):
        path = Path(root)
        if path == top:
            continue
        try:
            if min_age_s and now - path.stat().st_mtime < min_age_s:
                continue
            path.rmdir()  # only succeeds when empty
        except OSError:
            continue


def model_caches(data_dir: Path, loaded_ids: Iterable[str]) -> list[CacheFolder]:
    """The cache folders under the data dir with their sizes, largest first.

    Each folder of `data_dir/models/` is one model's cache; other top-level folders (style thumbnails,
    ...) are caches too, but never `history/` (the History database). A folder is in use when a loaded model's id starts its name.
    """
    loaded = [i.lower() for i in loaded_ids]
    folders: list[Path] = []
    models = Path(data_dir) / "models"
    if models.is_dir():
        folders += [p for p in models.iterdir() if p.is_dir()]
    if Path(data_dir).is_dir():
        folders += [
            p
            for p in Path(data_dir).iterdir()
            if p.is_dir() and p.name not in NOT_CACHES and not p.name.startswith(".")
        ]
    rows = []
    for path in folders:
        name = path.name
        in_use = any(name.lower().startswith(model_id.replace("/", "--")) for model_id in loaded)
        rows.append(CacheFolder(name, path, folder_bytes(path), in_use))
    return sorted(rows, key=lambda row: -row.bytes)


def clear_model_caches(data_dir: Path, loaded_ids: Iterable[str]) -> list[CacheFolder]:
    """Delete every cache folder not in use; returns what was removed (they rebuild on next load)."""
    removed = []
    for cache in model_caches(data_dir, loaded_ids):
        if cache.in_use:
            continue
        shutil.rmtree(cache.path, ignore_errors=True)
        removed.append(cache)
        log.info("cleared model cache %s (%.1f MB)", cache.name, cache.bytes / MB)
    return removed
