"""Scores: finishing a composed score (key, tempo, instruments) and reading MIDI openings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import symusic

from pipelines.music.composer import ComposerBundle, SampleSettings, sample
from pipelines.music.limits import (
    _FIFTHS_MAJOR,
    MAX_MIDI_BYTES,
    MAX_OPENING_BARS,
    OUTPUT_MIDI_TPQ,
    STYLE_DEFAULTS,
)
from pipelines.music.tokens import BAR_TICKS, MAX_VOICES, TPQ, VOICE_NAMES, Key, transpose_score
from studio.events import CancelToken, UserError

# -- scores --------------------------------------------------------------------------------------


def key_signature(key: Key) -> symusic.KeySignature:
    major_tonic = key.tonic if key.mode == "major" else (key.tonic + 3) % 12
    return symusic.KeySignature(0, _FIFTHS_MAJOR[major_tonic], 0 if key.mode == "major" else 1)


def finish_score(
    voices: list[list[tuple[int, int, int]]],
    key: Key,
    tempo: float,
    instruments: tuple[int, ...],
    total_bars: int,
    velocity: int,
    hold_last: bool = True,
) -> symusic.Score:
    """Voices on the 16th grid, in the final key -> a 480-tpq MIDI score of exactly total_bars.

    Notes past the last bar are dropped or cut; with `hold_last` the final onset's notes are held
    to the last bar line (a cadence, and a file whose length is the requested length).
    """
    end = total_bars * BAR_TICKS
    melody_only = len(voices) == 1
    score = symusic.Score(TPQ)
    last_onset = max((s for voice in voices for s, _, _ in voice if s < end), default=0)
    for index, notes in enumerate(voices):
        name = "Melody" if melody_only else VOICE_NAMES[index]
        track = symusic.Track(name=name, program=int(instruments[index % len(instruments)]))
        for start, duration, pitch in sorted(notes):
            if start >= end:
                continue
            stop = min(start + duration, end)
            if hold_last and start == last_onset:
                stop = end
            accent = 10 if start % BAR_TICKS == 0 else 0  # a little weight on each downbeat
            track.notes.append(
                symusic.Note(start, max(1, stop - start), int(pitch), min(127, velocity + accent))
            )
        score.tracks.append(track)
    score.tempos.append(symusic.Tempo(0, qpm=float(tempo)))
    score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    score.key_signatures.append(key_signature(key))
    return score.resample(OUTPUT_MIDI_TPQ)


def score_voices(score: symusic.Score) -> list[list[tuple[int, int, int]]]:
    """A decoded (4-tpq, Program_i tracks) score -> notes per voice index."""
    voices: list[list[tuple[int, int, int]]] = [[] for _ in range(MAX_VOICES)]
    for track in score.tracks:
        voice = min(int(track.program), MAX_VOICES - 1)
        voices[voice].extend((int(n.time), int(n.duration), int(n.pitch)) for n in track.notes)
    while voices and not voices[-1]:
        voices.pop()
    return voices or [[]]


def compose_voices(
    bundle: ComposerBundle,
    style: str,
    key: Key,
    bars: int,
    temperature: float,
    seed: int,
    top_k: int = 0,
    cancel: CancelToken | None = None,
    on_bar: Callable[[int, int], None] | None = None,
) -> list[list[tuple[int, int, int]]]:
    """Sample `bars` bars and return the notes per voice, transposed to `key`."""
    settings = SampleSettings(bars, temperature, top_k, seed, STYLE_DEFAULTS[style]["voices"])
    body = sample(bundle, style, key.mode, settings, cancel=cancel, on_bar=on_bar)
    decoded = bundle.tokenizer.decode(body)
    shifted = transpose_score(decoded, key.shift_from_normal)
    return score_voices(shifted)


# -- reading MIDI openings -----------------------------------------------------------------------


@dataclass(frozen=True)
class Opening:
    voices: list[list[tuple[int, int, int]]]  # 16th grid, original pitches
    tempo: float
    bars: int  # bars spanned (the last may be partial)
    notices: tuple[str, ...] = ()


def read_midi(path: str | Path) -> symusic.Score:
    path = Path(path)
    if not path.exists():
        raise UserError("The MIDI file is missing (the upload may have expired); upload it again.")
    size = path.stat().st_size
    if size == 0:
        raise UserError("The MIDI file is empty (zero bytes).")
    if size > MAX_MIDI_BYTES:
        raise UserError(f"The MIDI file is {size / 1e6:.1f} MB; the limit is {MAX_MIDI_BYTES / 1e6:.0f} MB.")
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"MThd":
        raise UserError(f"'{path.name}' is not a MIDI file (it does not start with the MThd header).")
    try:
        score = symusic.Score(str(path))
    except Exception as error:  # noqa: BLE001 - symusic raises RuntimeError/ValueError variants
        raise UserError(
            f"'{path.name}' could not be read as MIDI: it looks corrupt ({str(error)[:80]})."
        ) from None
    if score.note_num() == 0:
        raise UserError(f"'{path.name}' contains no notes.")
    return score


def opening_from_score(score: symusic.Score, tempo_override: float = 0.0) -> Opening:
    """Up to 4 pitched parts (highest first), quantized to 16ths, cut to MAX_OPENING_BARS."""
    notices: list[str] = []
    tracks = [t for t in score.tracks if not t.is_drum and len(t.notes)]
    if not tracks:
        raise UserError("The MIDI file has no pitched notes (only drums).")
    if len(tracks) > MAX_VOICES:
        notices.append(f"The file has {len(tracks)} parts; the {MAX_VOICES} busiest were kept.")
        tracks = sorted(tracks, key=lambda t: len(t.notes), reverse=True)[:MAX_VOICES]
    tracks = sorted(tracks, key=lambda t: -float(np.mean([n.pitch for n in t.notes])))
    tempo = float(tempo_override) or (float(score.tempos[0].qpm) if len(score.tempos) else 120.0)
    scale = TPQ / score.ticks_per_quarter
    first = min(int(t.notes[0].time) for t in tracks)
    offset = (int(round(first * scale)) // BAR_TICKS) * BAR_TICKS  # skip silent leading bars
    limit = MAX_OPENING_BARS * BAR_TICKS
    voices: list[list[tuple[int, int, int]]] = []
    cut = False
    for track in tracks:
        notes = []
        for note in track.notes:
            start = int(round(note.time * scale)) - offset
            if start >= limit:
                cut = True
                continue
            duration = max(1, int(round(note.duration * scale)))
            notes.append((start, duration, int(note.pitch)))
        voices.append(sorted(set(notes)))
    if cut:
        notices.append(f"The opening was cut to its first {MAX_OPENING_BARS} bars.")
    last_onset = max(s for v in voices for s, _, _ in v)
    bars = last_onset // BAR_TICKS + 1
    return Opening(voices, tempo, bars, tuple(notices))
