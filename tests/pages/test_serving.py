"""pages.serving without a server: result links, owners, and removing finished jobs' uploads."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from pages.serving import discard_uploads, link_dir, owner_of, record_ids, served, viewer
from studio.retention import folder_bytes


def request(user: str | None = None, session: str = "s1") -> gr.Request:
    return gr.Request(username=user, session_hash=session)


def test_a_served_result_is_a_free_per_owner_link(ctx) -> None:
    path = ctx.store.write("art", ".png", lambda p: p.write_bytes(os.urandom(40_000)))
    mine = served(ctx, request(session="a"), path)
    again = served(ctx, request(session="a"), path)
    theirs = served(ctx, request(session="b"), path)
    assert mine == again and mine != theirs  # stable per owner, different between owners
    assert Path(mine).is_relative_to(link_dir(ctx)) and Path(mine).read_bytes() == path.read_bytes()
    assert os.stat(mine).st_ino == path.stat().st_ino  # a hard link: no second copy
    assert folder_bytes(ctx.settings.upload_dir) == 0


def test_owners_and_viewers(ctx) -> None:
    assert owner_of(request("ana")) == "user:ana" and owner_of(request(None, "xyz")) == "session:xyz"
    assert viewer(ctx, request("ana")) is None  # a local app lists everyone's results


@dataclass(frozen=True)
class Picture:
    record_id: int


@dataclass(frozen=True)
class Batch:
    images: list[Picture] = field(default_factory=list)
    record_id: int | None = None


def test_record_ids_are_found_in_nested_results() -> None:
    assert record_ids(Batch([Picture(3), Picture(4)], 9)) == [3, 4, 9]
    assert record_ids(Batch([], None)) == [] and record_ids("text") == []


def test_only_big_uploads_inside_the_cache_are_discarded(ctx, tmp_path: Path) -> None:
    cache = ctx.settings.upload_dir
    big = cache / "h1" / "clip.wav"
    small = cache / "h2" / "photo.png"
    outside = tmp_path / "elsewhere.wav"
    for path, size in ((big, 9 * 2**20), (small, 100_000), (outside, 9 * 2**20)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * size)
    result = ctx.store.write("music", ".wav", lambda p: p.write_bytes(b"\0" * 9 * 2**20))
    link = served(ctx, request(), result)
    assert discard_uploads(ctx, str(big), str(small), str(outside), link, str(result), None) == 1
    assert (
        not big.exists() and small.exists() and outside.exists() and Path(link).exists() and result.exists()
    )
