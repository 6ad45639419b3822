"""Bounded disk: result retention (file and row together, pinned kept), upload-cache sweep, model caches."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

from studio.retention import (
    CachePolicy,
    RetentionPolicy,
    clear_model_caches,
    disk_bytes,
    folder_bytes,
    model_caches,
    sweep_cache,
)
from studio.settings import Settings
from studio.store import OutputStore

KB = 1024


def save(store: OutputStore, title: str, size: int = 10 * KB, task: str = "art") -> int:
    path = store.write(task, ".bin", lambda p: p.write_bytes(os.urandom(size)))
    return store.record(task, title, {"title": title}, [path]).id


def files_on_disk(store: OutputStore) -> set[Path]:
    return {p for p in store.root.rglob("*") if p.is_file() and ".gradio" not in p.parts}


def referenced(store: OutputStore) -> set[Path]:
    with sqlite3.connect(store.db_path) as db:
        rows = db.execute("SELECT files FROM results").fetchall()
    return {store.root / f for (files,) in rows for f in json.loads(files)}


def test_a_tiny_size_bound_removes_the_oldest_results_with_their_rows(tmp_path: Path) -> None:
    store = OutputStore(tmp_path / "out", tmp_path / "h.sqlite", RetentionPolicy(max_bytes=35 * KB))
    pinned = save(store, "keep me")
    assert store.set_pinned(pinned, True)
    ids = [save(store, f"r{i}") for i in range(10)]
    listed = [r.id for r in store.history("art", 100)]
    # the pinned result stays; of the unpinned, only the newest three fit in 35 KB
    assert listed == [*reversed(ids[-3:]), pinned]
    assert files_on_disk(store) == referenced(
        store
    )  # never a file without its row, nor a row without its file
    assert all(p.exists() for r in store.history("art", 100) for p in r.files)
    assert store.count() == 4


def test_old_results_go_pinned_ones_stay(tmp_path: Path) -> None:
    store = OutputStore(tmp_path / "out", tmp_path / "h.sqlite")
    old, old_pinned, new = save(store, "old"), save(store, "old pinned"), save(store, "new")
    store.set_pinned(old_pinned, True)
    with sqlite3.connect(store.db_path) as db:  # age the first two by 40 days
        db.execute("UPDATE results SET created = created - 40 * 86400 WHERE id IN (?, ?)", (old, old_pinned))
    report = store.enforce(RetentionPolicy(keep_days=30))
    assert report.removed_records == 1 and report.removed_bytes == 10 * KB
    assert [r.id for r in store.history("art")] == [new, old_pinned]
    assert files_on_disk(store) == referenced(store)


def test_history_lists_only_results_whose_files_exist(tmp_path: Path) -> None:
    store = OutputStore(tmp_path / "out", tmp_path / "h.sqlite")
    kept, lost = save(store, "kept"), save(store, "lost")
    store.get(lost).files[0].unlink()  # deleted by hand
    assert [r.id for r in store.history("art")] == [kept] and store.get(lost) is None
    assert store.repair() == (1, 0)  # the row without its file goes at the next start
    assert store.count() == 1


def test_repair_removes_files_without_rows_and_partial_leftovers(tmp_path: Path) -> None:
    store = OutputStore(tmp_path / "out", tmp_path / "h.sqlite")
    kept = save(store, "kept")
    orphan = store.new_path("art", ".png")
    orphan.write_bytes(b"written, but the process died before its row")
    partial = orphan.with_name(orphan.stem + "x.partial.png")  # what a killed write leaves
    partial.write_bytes(b"half")
    strangers = [store.root / "notes" / "mine.txt", orphan.with_name("mine.txt")]  # not shaped like results
    for path in strangers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("a file someone keeps here")
    cache_file = store.root / ".gradio" / "abc" / "upload.wav"  # the upload cache is not a result
    cache_file.parent.mkdir(parents=True)
    cache_file.write_bytes(b"upload")
    assert store.repair() == (0, 2)
    assert files_on_disk(store) == referenced(store) | set(strangers) and cache_file.exists()
    assert [r.id for r in store.history()] == [kept]


def test_owners_claims_and_pins(tmp_path: Path) -> None:
    store = OutputStore(tmp_path / "out", tmp_path / "h.sqlite")
    a, b = save(store, "a"), save(store, "b")
    assert store.claim([a], "user:ana") == 1 and store.claim([b], "user:bob") == 1
    assert store.claim([a], "user:bob") == 0  # a claim never takes a result from its owner
    assert [r.id for r in store.history(owner="user:ana")] == [a]
    assert store.get(a, owner="user:bob") is None and store.get(a, owner="user:ana").owner == "user:ana"
    assert not store.set_pinned(a, True, owner="user:bob") and store.set_pinned(a, True, owner="user:ana")
    assert store.get(a).pinned and not store.get(b).pinned


def test_the_database_is_wal_and_outside_the_output_dir(tmp_path: Path) -> None:
    store = OutputStore(tmp_path / "out")
    assert not store.db_path.is_relative_to(store.root)
    with sqlite3.connect(store.db_path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    settings = Settings(output_dir=tmp_path / "out", data_dir=tmp_path / "data")
    assert settings.history_path.is_relative_to(tmp_path / "data")
    other = Settings(output_dir=tmp_path / "out2", data_dir=tmp_path / "data")
    assert other.history_path != settings.history_path  # one index per output dir


def test_an_index_left_in_the_output_dir_is_moved_out(tmp_path: Path) -> None:
    root = tmp_path / "out"
    (root / "art").mkdir(parents=True)
    (root / "art" / "old.png").write_bytes(b"png")
    with sqlite3.connect(root / "history.sqlite") as db:  # the schema of the previous release
        db.execute(
            "CREATE TABLE results (id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL, task TEXT NOT NULL,"
            " title TEXT NOT NULL, params TEXT NOT NULL, files TEXT NOT NULL)"
        )
        db.execute(
            "INSERT INTO results (created, task, title, params, files) VALUES (?, 'art', 'old', '{}', ?)",
            (time.time(), '["art/old.png"]'),
        )
    store = OutputStore(root, tmp_path / "data" / "history.sqlite")
    assert not (root / "history.sqlite").exists() and store.db_path.exists()
    [record] = store.history()
    assert record.title == "old" and record.owner == "" and not record.pinned
    assert record.files == (root / "art" / "old.png",)


def test_result_names_are_unguessable(tmp_path: Path) -> None:
    store = OutputStore(tmp_path / "out", tmp_path / "h.sqlite")
    names = {store.new_path("art", ".png").stem.split("-", 1)[1] for _ in range(50)}
    assert len(names) == 50 and all(len(n) >= 16 for n in names)  # 96 random bits each


def make_file(path: Path, size: int, age_s: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    if age_s:
        when = time.time() - age_s
        os.utime(path, (when, when))
    return path


def test_sweep_cache_by_age_then_size(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    old = make_file(cache / "h1" / "old.wav", 10 * KB)
    for i in range(2, 7):
        make_file(cache / f"h{i}" / "up.wav", 10 * KB)
    # ctime cannot be set from Python: age by looking from the future instead
    report = sweep_cache(
        cache, CachePolicy(max_bytes=0, max_age_s=3600, big_upload_bytes=0), now=time.time() + 7200
    )
    assert report.removed_files == 6 and folder_bytes(cache) == 0
    files = [make_file(cache / f"h{i}" / "up.wav", 10 * KB) for i in range(6)]
    for f in files:  # distinct ctimes, oldest first
        os.utime(f)
        time.sleep(0.01)
    report = sweep_cache(cache, CachePolicy(max_bytes=25 * KB, max_age_s=0, big_upload_bytes=0))
    assert report.remaining_bytes <= 25 * KB and folder_bytes(cache) <= 25 * KB
    assert files[-1].exists() and files[-2].exists() and not files[0].exists()
    assert not old.exists()


def test_a_link_to_a_result_costs_nothing(tmp_path: Path) -> None:
    result = make_file(tmp_path / "out" / "art" / "r.png", 50 * KB)
    link = tmp_path / "cache" / "results" / "k" / "r.png"
    link.parent.mkdir(parents=True)
    os.link(result, link)
    assert folder_bytes(tmp_path / "cache") == 0
    assert disk_bytes(tmp_path) == 50 * KB  # the result and its link are one file on disk
    sweep_cache(tmp_path / "cache", CachePolicy(max_bytes=1, max_age_s=0, big_upload_bytes=0))
    assert link.exists() and result.exists()


def test_model_caches_are_listed_and_unused_ones_cleared(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_file(data / "models" / "debug-tiny-sd" / "unet.bin", 30 * KB)
    make_file(data / "models" / "smollm2-135m-safetensors" / "model.safetensors", 50 * KB)
    make_file(data / "style_thumbnails" / "0.png", 5 * KB)
    make_file(data / "history" / "out-1.sqlite", 1 * KB)  # the History is not a cache
    rows = model_caches(data, loaded_ids=["smollm2-135m"])
    assert [(r.name, r.bytes, r.in_use) for r in rows] == [
        ("smollm2-135m-safetensors", 50 * KB, True),
        ("debug-tiny-sd", 30 * KB, False),
        ("style_thumbnails", 5 * KB, False),
    ]
    removed = clear_model_caches(data, loaded_ids=["smollm2-135m"])
    assert {r.name for r in removed} == {"debug-tiny-sd", "style_thumbnails"}
    assert (data / "models" / "smollm2-135m-safetensors").exists() and (data / "history").exists()


def test_space_defaults_are_tighter(monkeypatch) -> None:
    monkeypatch.delenv("SPACE_ID", raising=False)
    local = (Settings().retention, Settings().upload_cache, Settings().scope)
    monkeypatch.setenv("SPACE_ID", "team/studio")
    space = (Settings().retention, Settings().upload_cache, Settings().scope)
    assert space[0].max_bytes < local[0].max_bytes and space[0].keep_days < local[0].keep_days
    assert space[1].max_bytes < local[1].max_bytes and space[1].max_age_s < local[1].max_age_s
    assert local[2] == "all" and space[2] == "session" and Settings(auth="a:b").scope == "user"
    monkeypatch.delenv("SPACE_ID")
    env = Settings.from_env(
        {"STUDIO_KEEP_DAYS": "3", "STUDIO_MAX_OUTPUT_GB": "0.5", "STUDIO_UPLOAD_CACHE_MB": "64"}
    )
    assert env.retention == RetentionPolicy(keep_days=3.0, max_bytes=512 * 1024**2)
    assert env.upload_cache.max_bytes == 64 * 1024**2
    assert Settings(keep_days=0, max_output_gb=0).retention.active is False  # 0 = keep everything
