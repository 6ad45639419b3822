"""Fixtures and helpers shared by the music pipeline tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.music.pipeline import (
    MusicPipeline,
)
from pipelines.music.scores import finish_score
from pipelines.music.tokens import Key
from studio.events import Finished, Notice


@pytest.fixture
def pipeline(ctx) -> MusicPipeline:
    return MusicPipeline(ctx.registry, ctx.store)


def run(events) -> tuple[list, object]:
    events = list(events)
    assert isinstance(events[-1], Finished)
    return events, events[-1].result


def notices(events) -> list[str]:
    return [e.message for e in events if isinstance(e, Notice)]


def melody_midi(
    path: Path, pitches: list[int], tempo: float = 100.0, key: Key = Key(2, "major")
) -> list[int]:
    """A one-voice MIDI of quarter notes; returns the pitches written."""
    notes = [(i * 4, 4, p) for i, p in enumerate(pitches)]
    finish_score([notes], key, tempo, (73,), (len(pitches) + 3) // 4, 90, hold_last=False).dump_midi(
        str(path)
    )
    return pitches
