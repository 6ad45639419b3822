"""MIDI -> audio with tinysoundfont and the TimGM6mb.sf2 General MIDI bank inside pretty_midi.

Pure pip: tinysoundfont synthesizes the notes of a symusic score event by event, straight into the
output array; soundfile writes WAV, MP3 and OGG (libsndfile >= 1.1). The soundfont is parsed once
and each render plays on its own clone (tinysoundfont's SoundFont copy constructor: shared sample
data, fresh voices and channels), which saves the ~50 ms parse per piece and needs no lock. The
clone is driven through tinysoundfont's engine object directly (the `Synth` wrapper always parses).
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import symusic

SAMPLE_RATE = 32000  # Hz; plenty for a 6 MB GM bank, and a third cheaper than 44.1 kHz
TAIL_S = 1.0  # release tail after the last note-off, seconds
GAIN_DB = -3.0  # synth output gain
MAX_VOICES = 256  # tinysoundfont's default polyphony

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


@functools.lru_cache(maxsize=1)
def _parsed_soundfont() -> Any:
    from tinysoundfont._tinysoundfont import SoundFont

    return SoundFont(str(soundfont_path()))


def _fresh_soundfont(sample_rate: int) -> Any:
    """A clone of the parsed GM bank with its own voices and channels, set up like tinysoundfont's Synth."""
    from tinysoundfont._tinysoundfont import OutputMode, SoundFont

    soundfont = SoundFont(_parsed_soundfont())
    soundfont.set_output(OutputMode.StereoInterleaved, sample_rate, GAIN_DB)
    soundfont.set_max_voices(MAX_VOICES)
    return soundfont


def render(score: symusic.Score, sample_rate: int = SAMPLE_RATE, tail_s: float = TAIL_S) -> Audio:
    """Synthesize every note of the score; each track plays its own program on its own channel.

    Without tinysoundfont (a host where it failed to install) the notes are rendered as plain
    sine tones by pretty_midi instead; `have_soundfont_synth()` tells which.
    """
    if not have_soundfont_synth():
        return render_sine(score, sample_rate, tail_s)
    seconds = score.to("second")  # tempo map applied: note times in seconds
    # 1. note events as (sample, order, channel, pitch, velocity); one MIDI channel per track
    events: list[tuple[int, int, int, int, int]] = []
    programs: list[tuple[int, int, int, bool]] = []  # (channel, bank, preset, is_drum)
    channels = [c for c in range(16) if c != 9]  # 9 is the drum channel
    for index, track in enumerate(seconds.tracks):
        channel = 9 if track.is_drum else channels[index % len(channels)]
        programs.append(
            (channel, 128 if track.is_drum else 0, 0 if track.is_drum else track.program, track.is_drum)
        )
        for note in track.notes:
            start = int(round(note.time * sample_rate))
            end = max(start + 1, int(round((note.time + note.duration) * sample_rate)))
            events.append((start, 1, channel, note.pitch, note.velocity))
            events.append((end, 0, channel, note.pitch, 0))  # note-offs sort before note-ons
    events.sort()
    total = (events[-1][0] if events else 0) + int(tail_s * sample_rate)
    out = np.zeros((total, 2), dtype=np.float32)
    frames = memoryview(out).cast("B")  # the synth writes each stretch straight into `out`
    frame_bytes = 2 * out.itemsize
    # 2. render the audio between consecutive events on a fresh clone of the soundfont
    soundfont = _fresh_soundfont(sample_rate)
    for channel, bank, preset, is_drum in programs:
        soundfont.channel_set_bank(channel, bank)
        soundfont.channel_set_preset_number(channel, preset, is_drum)
    cursor = 0
    for sample, _, channel, pitch, velocity in events:
        if sample > cursor:
            soundfont.render(frames[cursor * frame_bytes : sample * frame_bytes], False)
            cursor = sample
        if velocity:
            soundfont.channel_note_on(channel, pitch, velocity / 127.0)
        else:
            soundfont.channel_note_off(channel, pitch)
    if total > cursor:
        soundfont.render(frames[cursor * frame_bytes : total * frame_bytes], False)
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
    channels = 1 if audio.samples.ndim == 1 else audio.samples.shape[1]
    # one second per write: libsndfile 1.2's Vorbis encoder crashes the process (SIGSEGV) when handed
    # a long clip (~2 minutes of stereo) in a single write
    block = audio.sample_rate
    with sf.SoundFile(str(path), "w", audio.sample_rate, channels, subtype, format=fmt) as out:
        for start in range(0, len(audio.samples), block):
            out.write(audio.samples[start : start + block])
