"""The composer's vocabulary: a miditok REMI tokenizer plus conditioning tokens, and key helpers.

Representation (shared by training and the app, so it lives here and not in training/):
- REMI over a 16th-note grid, one token stream, no velocities. A part is a `Program_i` token
  (i = voice index 0..3: soprano/melody, alto, tenor, bass), not a GM instrument: the instrument
  is chosen at render time, per part.
- Every sequence starts with `BOS Style_<style> Mode_<mode>`.
- Pieces are transposed to C major / A minor before tokenizing, so the model learns scale degrees
  once; the requested key is applied afterwards by transposing back (`transpose_score`).
- Tempo is not a token: REMI positions are in beats, and the corpus carries almost no metronome
  marks, so tempo is a property of the written MIDI (the Tempo meta event) and of the render.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import symusic

STYLES = ("chorale", "folk", "irish")
MODES = ("major", "minor")
MAX_VOICES = 4  # SATB; a melody uses voice 0
VOICE_NAMES = ("Soprano / melody", "Alto", "Tenor", "Bass")
TPQ = 4  # ticks per quarter of decoded scores: the 16th-note grid
BAR_TICKS = 4 * TPQ  # 4/4 bars
PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
KEYS = tuple(f"{name} {mode}" for mode in MODES for name in PITCH_NAMES)  # "C major" ... "B minor"

# scale pitch classes relative to the tonic; minor admits the raised 6th/7th (melodic/harmonic)
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10, 9, 11)  # natural minor + raised 6th + leading note


@dataclass(frozen=True)
class Key:
    tonic: int  # pitch class 0..11 (C = 0)
    mode: str  # "major" | "minor"

    @property
    def name(self) -> str:
        return f"{PITCH_NAMES[self.tonic]} {self.mode}"

    @property
    def scale(self) -> frozenset[int]:
        """Pitch classes that count as in-scale (for minor: natural, harmonic and melodic)."""
        steps = MAJOR_SCALE if self.mode == "major" else MINOR_SCALE
        return frozenset((self.tonic + s) % 12 for s in steps)

    @property
    def shift_from_normal(self) -> int:
        """Semitones from C major / A minor up to this key, in [-5, 6] (the smallest move)."""
        home = 0 if self.mode == "major" else 9
        return (self.tonic - home + 5) % 12 - 5

    @classmethod
    def parse(cls, text: str) -> Key:
        """'F# minor', 'Bb major', 'c minor' -> Key. Raises ValueError on anything else."""
        parts = text.strip().replace("♯", "#").replace("♭", "b").split()
        if len(parts) != 2 or parts[1].lower() not in MODES:
            raise ValueError(f"not a key: {text!r}")
        name = parts[0][:1].upper() + parts[0][1:]
        aliases = {"Db": "C#", "D#": "Eb", "Gb": "F#", "G#": "Ab", "A#": "Bb", "Cb": "B", "Fb": "E"}
        name = aliases.get(name, name)
        if name not in PITCH_NAMES:
            raise ValueError(f"not a key: {text!r}")
        return cls(PITCH_NAMES.index(name), parts[1].lower())


def conditioning_tokens(style: str, mode: str) -> list[str]:
    return ["BOS_None", f"Style_{style}", f"Mode_{mode}"]


@functools.lru_cache(maxsize=1)
def make_tokenizer():  # -> miditok.REMI
    """The REMI tokenizer; its vocabulary is fixed by this config (the model depends on it)."""
    from miditok import REMI, TokenizerConfig

    specials = ["PAD", "BOS", "EOS", *(f"Style_{s}" for s in STYLES), *(f"Mode_{m}" for m in MODES)]
    config = TokenizerConfig(
        pitch_range=(28, 100),  # E1..E7: bass line to the top of a tin whistle, after transposition
        beat_res={(0, 4): 4, (4, 8): 2},  # 16ths up to 4 beats, 8ths up to 8 beats
        use_velocities=False,  # the corpus has none; velocity is set at render time
        use_programs=True,  # Program_i = voice i
        programs=list(range(MAX_VOICES)),
        use_note_duration_programs=list(range(MAX_VOICES)),
        one_token_stream_for_programs=True,
        use_time_signatures=False,  # 4/4 bar grid for every style
        special_tokens=specials,
    )
    return REMI(config)


def transpose_score(score: symusic.Score, semitones: int) -> symusic.Score:
    """A copy of the score with every note moved by `semitones`."""
    out = score.copy()
    if semitones:
        for track in out.tracks:
            for note in track.notes:
                note.pitch = int(np.clip(note.pitch + semitones, 0, 127))
    return out


def voices_score(voices: list[list[tuple[int, int, int]]], tpq: int = TPQ) -> symusic.Score:
    """[[(start_tick, duration_ticks, pitch), ...] per voice] -> a score with Program_i tracks."""
    score = symusic.Score(tpq)
    for index, notes in enumerate(voices):
        track = symusic.Track(program=index, name=VOICE_NAMES[min(index, MAX_VOICES - 1)])
        for start, duration, pitch in notes:
            track.notes.append(symusic.Note(int(start), max(1, int(duration)), int(pitch), 80))
        score.tracks.append(track)
    return score


# -- Krumhansl-Kessler key profiles (Krumhansl 1990): correlation with a pitch-class histogram ----

KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def key_scores(histogram: np.ndarray) -> np.ndarray:
    """(12,) pitch-class weights -> (24,) Pearson correlations, keys ordered as KEYS."""
    hist = np.asarray(histogram, dtype=np.float64)
    out = np.zeros(24)
    for tonic in range(12):
        out[tonic] = np.corrcoef(hist, np.roll(KK_MAJOR, tonic))[0, 1]
        out[12 + tonic] = np.corrcoef(hist, np.roll(KK_MINOR, tonic))[0, 1]
    return np.nan_to_num(out, nan=-1.0)


def estimate_key(histogram: np.ndarray) -> Key:
    """The best-correlated key for a pitch-class histogram (a chroma mean or note durations)."""
    best = int(np.argmax(key_scores(histogram)))
    return Key(best % 12, MODES[best // 12])


def pitch_class_histogram(score: symusic.Score) -> np.ndarray:
    """Duration-weighted pitch-class histogram of every note in the score."""
    hist = np.zeros(12)
    for track in score.tracks:
        for note in track.notes:
            hist[note.pitch % 12] += note.duration
    return hist
