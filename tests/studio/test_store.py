from __future__ import annotations

from pathlib import Path

from studio.store import OutputStore


def test_history_survives_restart(tmp_path: Path) -> None:
    store = OutputStore(tmp_path)
    path = store.write("art", ".txt", lambda p: p.write_text("hello"))
    record = store.record("art", "a title", {"seed": 7, "prompt": "x"}, [path])
    del store
    reopened = OutputStore(tmp_path)  # a new process would do exactly this
    [again] = reopened.history("art")
    assert again.id == record.id and again.params == {"seed": 7, "prompt": "x"}
    assert again.files == (path.resolve(),) and again.files[0].read_text() == "hello"
    assert reopened.get(record.id).title == "a title"


def test_write_is_atomic_on_failure(tmp_path: Path) -> None:
    store = OutputStore(tmp_path)

    def broken(p: Path) -> None:
        p.write_text("half")
        raise OSError("disk full")

    try:
        store.write("art", ".png", broken)
    except OSError:
        pass
    assert not [p for p in tmp_path.rglob("*.png")] and not list(tmp_path.rglob("*.partial*"))


def test_history_filters_and_orders(tmp_path: Path) -> None:
    store = OutputStore(tmp_path)
    for i in range(3):
        store.record("art", f"t{i}", {}, [])
    store.record("music", "m", {}, [])
    assert [r.title for r in store.history("art")] == ["t2", "t1", "t0"]
    assert len(store.history()) == 4
