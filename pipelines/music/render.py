"""MIDI -> audio with tinysoundfont and the TimGM6mb.sf2 General MIDI bank inside pretty_midi.

Pure pip: tinysoundfont (installed --no-deps; it only needs numpy at run time) synthesizes the
notes of a symusic score event by event; soundfile writes WAV, MP3 and OGG (libsndfile >= 1.1).
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import symusic

SAMPLE_RATE = 32000  # Hz; plenty for a 6 MB GM bank, and a third cheaper than 44.1 kHz
TAIL_S = 1.0  # release tail after the last note-off, seconds

# a short list of General MIDI programs that suit the styles (program number: name)
GM_CHOICES: dict[str, int] = {
    "Acoustic Grand Piano": 0,
    "Harpsichord": 6,
    "Church Organ": 19,
    "Reed Organ": 20,
    "Accordion": 21,
    "Nylon Guitar": 24,
    "Violin": 40,
    "Viola": 41,
    "Cello": 42,
    "Contrabass": 43,
    "String Ensemble": 48,
    "Choir Aahs": 52,
    "Trumpet": 56,
    "Trombone": 57,
    "French Horn": 60,
    "Oboe": 68,
    "English Horn": 69,
    "Bassoon": 70,
    "Clarinet": 71,
    "Flute": 73,
    "Recorder": 74,
    "Pan Flute": 75,
    "Tin Whistle": 78,  # GM "Whistle"
    "Fiddle": 110,
    "Bagpipe": 109,
}


@dataclass(frozen=True)
class Audio:
    samples: np.ndarray  # (n, 2) float32 stereo in [-1, 1]
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def mono(self) -> np.ndarray:
        return self.samples.mean(axis=1) if self.samples.ndim == 2 else self.samples


@functools.lru_cache(maxsize=1)
def soundfont_path() -> Path:
    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pretty_midi is not installed; it ships the TimGM6mb.sf2 soundfont")
    path = Path(spec.submodule_search_locations[0]) / "TimGM6mb.sf2"
    if not path.exists():
        raise RuntimeError(f"TimGM6mb.sf2 not found next to pretty_midi ({path})")
    return path


def have_soundfont_synth() -> bool:
    return importlib.util.find_spec("tinysoundfont") is not None


def render(score: symusic.Score, sample_rate: int = SAMPLE_RATE, tail_s: float = TAIL_S) -> Audio:
    """Synthesize every note of the score; each track plays its own program on its own channel.

    Without tinysoundfont (e.g. a host that only installed requirements.txt) the notes are
    rendered as plain sine tones by pretty_midi instead; `have_soundfont_synth()` tells which.
    """
    if not have_soundfont_synth():
        return render_sine(score, sample_rate, tail_s)
    import tinysoundfont

    seconds = score.to("second")  # tempo map applied: note times in seconds
    synth = tinysoundfont.Synth(gain=-3.0, samplerate=sample_rate)
    sfid = synth.sfload(str(soundfont_path()))
    # 1. one MIDI channel per track (skipping 9, the drum channel, for pitched tracks)
    events: list[tuple[int, int, int, int, int]] = []  # (sample, order, channel, pitch, velocity)
    channels = [c for c in range(16) if c != 9]
    for index, track in enumerate(seconds.tracks):
        channel = 9 if track.is_drum else channels[index % len(channels)]
        synth.program_select(
            channel, sfid, 128 if track.is_drum else 0, 0 if track.is_drum else track.program, track.is_drum
        )
        for note in track.notes:
            start = int(round(note.time * sample_rate))
            end = max(start + 1, int(round((note.time + note.duration) * sample_rate)))
            events.append((start, 1, channel, note.pitch, note.velocity))
            events.append((end, 0, channel, note.pitch, 0))  # note-offs sort before note-ons
    events.sort()
    total = (events[-1][0] if events else 0) + int(tail_s * sample_rate)
    out = np.zeros((total, 2), dtype=np.float32)
    # 2. generate audio between consecutive events
    cursor = 0
    for sample, _, channel, pitch, velocity in events:
        if sample > cursor:
            out[cursor:sample] = np.frombuffer(synth.generate(sample - cursor), dtype=np.float32).reshape(
                -1, 2
            )
            cursor = sample
        if velocity:
            synth.noteon(channel, pitch, velocity)
        else:
            synth.noteoff(channel, pitch)
    if total > cursor:
        out[cursor:total] = np.frombuffer(synth.generate(total - cursor), dtype=np.float32).reshape(-1, 2)
    np.clip(out, -1.0, 1.0, out=out)
    return Audio(out, sample_rate)


def render_sine(score: symusic.Score, sample_rate: int = SAMPLE_RATE, tail_s: float = TAIL_S) -> Audio:
    """The fallback: pretty_midi's additive sine synthesis (no instruments, but the right notes)."""
    import io

    import pretty_midi

    midi = pretty_midi.PrettyMIDI(io.BytesIO(score.dumps_midi()))
    mono = midi.synthesize(fs=sample_rate).astype(np.float32)
    length = int(round(midi.get_end_time() * sample_rate)) + int(tail_s * sample_rate)
    mono = np.pad(mono, (0, max(0, length - len(mono))))[:length]
    peak = float(np.abs(mono).max()) or 1.0
    mono *= 0.5 / peak
    return Audio(np.repeat(mono[:, None], 2, axis=1), sample_rate)


def write_audio(audio: Audio, path: Path, fmt: str) -> None:
    """fmt: 'WAV' (16-bit PCM), 'MP3' or 'OGG' (Vorbis), through libsndfile."""
    subtype = {"WAV": "PCM_16", "MP3": "MPEG_LAYER_III", "OGG": "VORBIS"}[fmt]
    sf.write(str(path), audio.samples, audio.sample_rate, format=fmt, subtype=subtype)
