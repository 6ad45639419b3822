"""Audio in: safe loading, pitch tracking to notes (pyin), and analysis with librosa + matplotlib.

- `load_audio` turns any upload into mono float32, refusing empty, corrupt and non-audio files
  with a UserError and trimming long ones (the caller shows the returned notice).
- `audio_to_notes`: librosa pyin -> f0 per frame -> runs of one MIDI pitch -> notes on a 16th grid.
- `analyse`: tempo and beats (librosa.beat.beat_track), key (a harmonic-unmixed CQT pitch profile
  vs Krumhansl-Kessler profiles), and the waveform / mel spectrogram / pianoroll figures (matplotlib, Agg backend).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import symusic

from pipelines.music.tokens import KEYS, TPQ, Key, estimate_key, key_scores
from studio.events import UserError

log = logging.getLogger(__name__)

ANALYSIS_SR = 22050  # librosa's default rate; enough for tempo, chroma and a mel plot
MIN_NOTE_S = 0.07  # shorter pitch runs are glitches, not notes
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".opus", ".m4a", ".webm")


@dataclass(frozen=True)
class LoadedAudio:
    samples: np.ndarray  # (n,) float32 mono
    sample_rate: int
    duration_s: float  # after trimming
    original_s: float  # before trimming
    notice: str = ""  # non-empty when the clip was trimmed


def load_audio(path: str | Path, max_seconds: float, sample_rate: int = ANALYSIS_SR) -> LoadedAudio:
    """Read an upload as mono at `sample_rate`, at most `max_seconds` long."""
    path = Path(path)
    if not path.exists():
        raise UserError("The audio file is missing (the upload may have expired); upload it again.")
    size = path.stat().st_size
    if size == 0:
        raise UserError("The audio file is empty (zero bytes).")
    # 1. libsndfile reads WAV/FLAC/OGG/MP3 headers without decoding: the length is known up front
    try:
        info = sf.info(str(path))
        original_s = info.frames / info.samplerate if info.samplerate else 0.0
        frames = min(info.frames, int(max_seconds * info.samplerate))
        data, rate = sf.read(str(path), frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as error:
        # 2. formats libsndfile lacks (m4a, webm) go through librosa/audioread, if an ffmpeg exists
        data, rate, original_s = _load_other(path, max_seconds, error)
    if data.size == 0:
        raise UserError("The audio file contains no samples.")
    mono = data.mean(axis=1) if data.ndim == 2 else data
    if not np.all(np.isfinite(mono)):
        raise UserError("The audio file contains invalid samples (NaN or infinity).")
    import librosa

    if rate != sample_rate:
        mono = librosa.resample(mono, orig_sr=rate, target_sr=sample_rate, res_type="soxr_hq")
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    duration = len(mono) / sample_rate
    notice = ""
    if original_s > max_seconds + 0.01:
        notice = f"The clip is {_clock(original_s)} long; only the first {_clock(max_seconds)} were used."
    return LoadedAudio(mono, sample_rate, duration, original_s, notice)


def _load_other(path: Path, max_seconds: float, first_error: BaseException) -> tuple[np.ndarray, int, float]:
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        raise UserError(
            f"'{path.name}' could not be read as audio. Upload WAV, FLAC, OGG or MP3."
        ) from first_error
    import librosa

    try:
        data, rate = librosa.load(str(path), sr=None, mono=True, duration=max_seconds)
        try:
            original = float(librosa.get_duration(path=str(path)))
        except Exception:  # noqa: BLE001 - length unknown: assume what we read
            original = len(data) / rate
    except Exception as error:  # noqa: BLE001 - audioread/ffmpeg raise many types
        raise UserError(
            f"'{path.name}' could not be decoded as audio ({type(error).__name__}). Upload WAV, FLAC, OGG or MP3."
        ) from error
    return np.asarray(data, dtype=np.float32), int(rate), original


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


# -- pitch tracking ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackedNotes:
    notes: list[tuple[float, float, int]]  # (start s, duration s, midi pitch)
    voiced_fraction: float  # share of frames with a pitch


PITCH_SR = 16000  # pyin rate: a 1024-sample frame still holds two periods of C2


def track_pitch(audio: LoadedAudio, hop_length: int = 320, frame_length: int = 1024) -> TrackedNotes:
    """librosa pyin over C2..C6; runs of frames on one rounded MIDI pitch become notes.

    pyin's Viterbi cost grows with the square of its pitch states: C2..C6 at 0.2-semitone steps
    (enough to round to semitones) costs 0.8 s of CPU per 30 s of audio, against 7.8 s for
    C2..C7 at the default 0.1. The 20 ms hop resolves 16ths up to ~190 BPM.
    """
    import librosa

    f0, voiced, _ = librosa.pyin(
        audio.samples,
        fmin=librosa.note_to_hz("C2"),
        fmax=librosa.note_to_hz("C6"),
        sr=audio.sample_rate,
        frame_length=frame_length,
        hop_length=hop_length,
        resolution=0.2,
    )
    frame_s = hop_length / audio.sample_rate
    midi = np.where(voiced & np.isfinite(f0), np.round(librosa.hz_to_midi(np.nan_to_num(f0, nan=1.0))), -1)
    notes: list[tuple[float, float, int]] = []
    start = 0
    for i in range(1, len(midi) + 1):
        if i == len(midi) or midi[i] != midi[start]:
            if midi[start] >= 0 and (i - start) * frame_s >= MIN_NOTE_S:
                notes.append((start * frame_s, (i - start) * frame_s, int(midi[start])))
            start = i
    return TrackedNotes(notes, float(np.mean(voiced)) if len(voiced) else 0.0)


def estimate_tempo(audio: LoadedAudio) -> float:
    import librosa

    tempo, _ = librosa.beat.beat_track(y=audio.samples, sr=audio.sample_rate)
    return float(np.atleast_1d(tempo)[0])


def notes_to_score(notes: list[tuple[float, float, int]], tempo: float) -> symusic.Score:
    """Seconds -> a one-voice score on the 16th grid at `tempo` quarters per minute."""
    ticks_per_s = tempo / 60.0 * TPQ
    score = symusic.Score(TPQ)
    track = symusic.Track(program=0, name="Melody")
    last_end = -1
    for start_s, duration_s, pitch in notes:
        start = int(round(start_s * ticks_per_s))
        duration = max(1, int(round(duration_s * ticks_per_s)))
        if start < last_end:  # two runs quantized onto one slot: keep the first
            continue
        track.notes.append(symusic.Note(start, duration, pitch, 90))
        last_end = start + duration
    score.tracks.append(track)
    score.tempos.append(symusic.Tempo(0, float(tempo)))
    return score


# -- analysis ------------------------------------------------------------------------------------


@dataclass
class Analysis:
    duration_s: float
    tempo_bpm: float
    beats_s: list[float]  # beat times, seconds
    key: str  # e.g. "D minor"
    key_confidence: float  # Pearson r of the best key profile
    key_ranking: list[tuple[str, float]]  # the top keys and their correlation
    figures: dict[str, Path] = field(default_factory=dict)  # "waveform", "mel", "pianoroll" -> PNG

    def summary(self) -> str:
        runners = ", ".join(f"{k} ({r:.2f})" for k, r in self.key_ranking[1:3])
        return (
            f"Duration {self.duration_s:.1f} s · tempo ≈ {self.tempo_bpm:.0f} BPM · {len(self.beats_s)} beats · "
            f"key ≈ {self.key} (r = {self.key_confidence:.2f}; next: {runners})"
        )


CQT_MIDI_LOW = 24  # C1
CQT_BINS = 84  # seven octaves, one bin per semitone


@functools.lru_cache(maxsize=1)
def harmonic_templates(partials: int = 8, decay: float = 0.6) -> np.ndarray:
    """(bins, notes): column n is the CQT magnitude pattern of note n with decaying partials."""
    w = np.zeros((CQT_BINS, CQT_BINS))
    for note in range(CQT_BINS):
        for k in range(1, partials + 1):
            b = note + int(round(12 * np.log2(k)))
            if b < CQT_BINS:
                w[b, note] += decay ** (k - 1)
    return w


def pitch_profile(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """(12,) pitch-class salience: the time-averaged CQT magnitude unmixed into notes by NNLS.

    A plain chroma counts every partial as a pitch class, so the 3rd harmonic (a fifth up) pulls
    the estimate towards the dominant key; fitting harmonic templates first (as NNLS-chroma does)
    removes that bias. On 20 rendered held-out chorales: plain CQT chroma 16/20, this 19/20.
    """
    import librosa
    from scipy.optimize import nnls

    cqt = np.abs(
        librosa.cqt(
            samples,
            sr=sample_rate,
            fmin=librosa.midi_to_hz(CQT_MIDI_LOW),
            n_bins=CQT_BINS,
            bins_per_octave=12,
        )
    )
    activation, _ = nnls(harmonic_templates(), cqt.mean(axis=1))
    profile = np.zeros(12)
    np.add.at(profile, (CQT_MIDI_LOW + np.arange(CQT_BINS)) % 12, activation)
    return profile


def chroma_key(samples: np.ndarray, sample_rate: int) -> tuple[Key, np.ndarray]:
    """Pitch-class profile -> Krumhansl-Kessler correlations -> the best key and all 24 scores."""
    profile = pitch_profile(samples, sample_rate)
    scores = key_scores(profile)
    return estimate_key(profile), scores


def analyse_audio(audio: LoadedAudio) -> Analysis:
    import librosa

    if float(np.max(np.abs(audio.samples))) < 1e-4:
        raise UserError("The audio is silent: there is nothing to analyse.")
    tempo, beat_frames = librosa.beat.beat_track(y=audio.samples, sr=audio.sample_rate)
    beats = librosa.frames_to_time(beat_frames, sr=audio.sample_rate)
    key, scores = chroma_key(audio.samples, audio.sample_rate)
    order = np.argsort(scores)[::-1]
    ranking = [(KEYS[i], float(scores[i])) for i in order[:5]]
    return Analysis(
        duration_s=audio.duration_s,
        tempo_bpm=float(np.atleast_1d(tempo)[0]),
        beats_s=[float(b) for b in beats],
        key=key.name,
        key_confidence=float(scores[order[0]]),
        key_ranking=ranking,
    )


# -- figures (Agg backend: no display, thread-safe through the object API) -----------------------


def _figure(width: float = 9.0, height: float = 2.6):  # noqa: ANN202
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, fig.add_subplot(1, 1, 1)


def plot_waveform(audio: LoadedAudio, beats_s: list[float], path: Path) -> None:
    fig, ax = _figure()
    # a min/max envelope per pixel column: fast for hours of audio, exact in shape
    columns = 1800
    n = len(audio.samples)
    step = max(1, n // columns)
    trimmed = audio.samples[: (n // step) * step].reshape(-1, step)
    t = np.arange(len(trimmed)) * step / audio.sample_rate
    ax.fill_between(t, trimmed.min(axis=1), trimmed.max(axis=1), color="#4c72b0", linewidth=0)
    for beat in beats_s:
        ax.axvline(beat, color="#dd8452", alpha=0.35, linewidth=0.8)
    ax.set(
        xlabel="time (s)",
        ylabel="amplitude",
        title="Waveform (orange: beats)",
        xlim=(0, n / audio.sample_rate),
    )
    fig.savefig(path, format="png")


def plot_mel(audio: LoadedAudio, path: Path) -> None:
    import librosa
    import librosa.display

    mel = librosa.feature.melspectrogram(y=audio.samples, sr=audio.sample_rate, n_mels=96)
    db = librosa.power_to_db(mel, ref=np.max)
    fig, ax = _figure(9.0, 3.0)
    image = librosa.display.specshow(
        db, sr=audio.sample_rate, x_axis="time", y_axis="mel", ax=ax, cmap="magma"
    )
    fig.colorbar(image, ax=ax, format="%+2.0f dB")
    ax.set(title="Mel spectrogram")
    fig.savefig(path, format="png")


def plot_pianoroll(score: symusic.Score, path: Path, title: str = "Pianoroll") -> None:
    """One coloured bar per note; one colour per track; bar lines every 4 beats."""
    fig, ax = _figure(9.0, 3.2)
    colours = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]
    tpq = score.ticks_per_quarter
    pitches: list[int] = []
    end = 0
    for index, track in enumerate(score.tracks):
        starts = np.array([n.time for n in track.notes], dtype=float) / tpq
        durations = np.array([n.duration for n in track.notes], dtype=float) / tpq
        notes = np.array([n.pitch for n in track.notes])
        if not len(notes):
            continue
        for s, d, p in zip(starts, durations, notes, strict=True):
            ax.add_patch(_rect(s, p - 0.4, d, 0.8, colours[index % len(colours)]))
        pitches.extend(int(p) for p in notes)
        end = max(end, float((starts + durations).max()))
        ax.plot(
            [], [], color=colours[index % len(colours)], linewidth=6, label=track.name or f"part {index + 1}"
        )
    for bar in range(0, int(end) + 1, 4):
        ax.axvline(bar, color="grey", alpha=0.25, linewidth=0.8)
    if pitches:
        ax.set_ylim(min(pitches) - 2, max(pitches) + 2)
    ax.set_xlim(0, max(end, 1))
    ax.set(xlabel="beats", ylabel="MIDI pitch", title=title)
    if len(score.tracks) > 1:
        ax.legend(loc="upper right", fontsize=7, ncols=min(4, len(score.tracks)))
    fig.savefig(path, format="png")


def _rect(x: float, y: float, w: float, h: float, colour: str):  # noqa: ANN202
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, facecolor=colour, edgecolor="black", linewidth=0.3)
