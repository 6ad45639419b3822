"""gradio_client against the launched app's Music tab: compose, continue, analyse, MusicGen, errors."""

from __future__ import annotations

import re
from pathlib import Path

import pretty_midi
import pytest
import soundfile as sf
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from pipelines.music.scores import finish_score
from pipelines.music.tokens import Key


def _path(value) -> Path:
    """gradio_client returns a file as a local path (or a dict holding one)."""
    if isinstance(value, dict):
        value = value.get("path") or value.get("value")
    return Path(value)


def compose_args(**kw) -> list:
    a = {"style": "chorale", "key": "E minor", "tempo": 90, "bars": 3, "temperature": 0.9, "seed": "21"}
    a.update(kw)
    instruments = kw.get("instruments", ["Church Organ", "Church Organ", "Cello", "Contrabass"])
    return [
        a["style"],
        a["key"],
        a["tempo"],
        a["bars"],
        a["temperature"],
        a["seed"],
        *instruments,
        kw.get("fmt", "MP3"),
    ]


def test_compose_returns_player_pianoroll_and_downloads(client) -> None:
    audio, roll, info, files, progress = client.predict(*compose_args(), api_name="/music_compose")
    assert "Done: saved as #" in progress  # the job's own progress line, after "Bar 3/3 · composing"
    assert _path(audio).suffix == ".mp3" and sf.info(str(_path(audio))).duration == pytest.approx(
        3 * 4 * 60 / 90 + 1, abs=0.1
    )
    assert _path(roll).read_bytes()[:4] == b"\x89PNG"
    assert "E minor" in info and "90 BPM" in info and "seed 21" in info
    suffixes = sorted(_path(f).suffix for f in files)
    assert suffixes == [".mid", ".mp3", ".wav"]
    midi = pretty_midi.PrettyMIDI(str(next(_path(f) for f in files if _path(f).suffix == ".mid")))
    assert [i.program for i in midi.instruments] == [19, 19, 42, 43]


def test_bars_are_clamped_and_bad_keys_refused(client) -> None:
    *_, info, _files = client.predict(
        *compose_args(style="folk", bars=0, instruments=["Flute"] * 4), api_name="/music_compose"
    )[:4]
    assert "1 bars" in info
    with pytest.raises(AppError, match="not in the list of choices"):  # the dropdown guards the API too
        client.predict(*compose_args(key="Q minor"), api_name="/music_compose")


def test_continue_from_midi_and_analyse(client, tmp_path: Path) -> None:
    notes = [(i * 4, 4, p) for i, p in enumerate([60, 62, 64, 65, 67, 65, 64, 62])]
    finish_score([notes], Key(0, "major"), 110, (73,), 2, 90, hold_last=False).dump_midi(
        str(tmp_path / "o.mid")
    )
    audio, roll, info, files = client.predict(
        handle_file(str(tmp_path / "o.mid")), None, "folk", 2, "auto", 0, 0.9, "3", api_name="/music_continue"
    )[:4]
    assert "first 8 notes are your opening" in info
    midi_path = next(_path(f) for f in files if _path(f).suffix == ".mid")
    got = sorted((n.start, n.pitch) for n in pretty_midi.PrettyMIDI(str(midi_path)).instruments[0].notes)
    assert [p for _, p in got[:8]] == [60, 62, 64, 65, 67, 65, 64, 62]
    summary, wave, mel, pianoroll = client.predict(
        handle_file(str(_path(audio))), handle_file(str(midi_path)), api_name="/music_analyse"
    )
    assert "tempo" in summary and "key" in summary
    assert all(_path(p).read_bytes()[:4] == b"\x89PNG" for p in (wave, mel, pianoroll))


def test_bad_uploads_get_clear_errors(client, tmp_path: Path) -> None:
    (tmp_path / "empty.mid").write_bytes(b"")
    with pytest.raises(AppError, match="empty"):
        client.predict(
            handle_file(str(tmp_path / "empty.mid")),
            None,
            "folk",
            2,
            "auto",
            0,
            0.9,
            "3",
            api_name="/music_continue",
        )
    (tmp_path / "notes.txt").write_text("not audio")
    with pytest.raises(AppError, match="could not be read as audio"):
        client.predict(handle_file(str(tmp_path / "notes.txt")), None, api_name="/music_analyse")


def test_text_to_music_with_the_debug_model(client) -> None:
    audio, info, files, progress = client.predict(
        "debug-tiny-musicgen", "calm piano", 1, 3, "4", api_name="/music_text_to_music"
    )
    assert sf.info(str(_path(audio))).samplerate == 16000
    assert "calm piano" in info and len(files) == 2 and "Done: saved as #" in progress


def test_compose_progress_counts_bars_up_to_the_total(client) -> None:
    """The progress line reads "Bar k/4 · …" and never passes the bars asked for (it once read "bar 9/8")."""
    job = client.submit(*compose_args(bars=4), api_name="/music_compose")
    job.result()
    labels = [out[4] for out in job.outputs() if isinstance(out[4], str)]
    bars = [re.search(r"Bar (\d+)/(\d+)", label) for label in labels]
    counts = [(int(m[1]), int(m[2])) for m in bars if m]
    assert counts, labels
    assert all(done <= total == 4 for done, total in counts), counts
    assert max(done for done, _ in counts) == 4
