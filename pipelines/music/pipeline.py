"""Music pipeline: compose, continue, render, analyse, and text-to-music through MusicGen.

Every entry point is `MusicPipeline.<task>(request, cancel) -> Iterator[Event]` on top of
`studio.worker.stream_events`: Started -> Step* -> Finished(result), with Notices for clamps,
trims and fallbacks. Requests that are wrong whatever the model (an unknown style, a bad key, an
empty or corrupt file) raise UserError before any model is loaded. Every result is written
through the OutputStore (MIDI, WAV, MP3/OGG, PNG figures) and recorded with its parameters.

Compose:   BOS Style Mode -> the composer samples N bars in C major / A minor -> decode (miditok)
           -> transpose to the requested key -> tempo, key signature, GM instrument per part
           -> render (tinysoundfont) -> files.
Continue:  MIDI (or audio -> pyin -> notes) -> 16th grid -> key estimate -> transpose to C/Am ->
           tokens as the opening -> the composer continues -> the opening's notes are kept as
           given, the new notes appended after them -> back to the key -> render -> files.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import symusic

from pipelines.music.audio import (
    PITCH_SR,
    Analysis,
    LoadedAudio,
    analyse_audio,
    estimate_tempo,
    load_audio,
    notes_to_score,
    plot_mel,
    plot_pianoroll,
    plot_waveform,
    track_pitch,
)
from pipelines.music.composer import ComposerBundle, SampleSettings, sample
from pipelines.music.limits import (
    AUDIO_FORMATS,
    MAX_ANALYSE_S,
    MAX_CONTINUE_AUDIO_S,
    MAX_MUSICGEN_S,
    STYLE_DEFAULTS,
    _instruments,
    check_common,
    clamp_bars,
    clamp_tempo,
    parse_key,
    validate_compose,
)
from pipelines.music.loudness import LoudnessResult, normalize_audio
from pipelines.music.render import Audio, have_soundfont_synth, render, write_audio
from pipelines.music.scores import (
    Opening,
    compose_voices,
    finish_score,
    opening_from_score,
    read_midi,
    score_voices,
)
from pipelines.music.tokens import estimate_key, pitch_class_histogram, transpose_score, voices_score
from studio.events import CancelToken, EtaClock, Event, Notice, Started, Step, UserError
from studio.inputs import MAX_SEED, parse_seed
from studio.registry import ModelRegistry
from studio.store import OutputStore
from studio.worker import Emit, stream_events

log = logging.getLogger(__name__)

TASK = "music"  # composer registry task and output folder
TEXT_TASK = "text-to-music"  # MusicGen registry task and output folder
ANALYSIS_TASK = "music-analysis"


# -- requests and results ------------------------------------------------------------------------


@dataclass(frozen=True)
class ComposeRequest:
    style: str = "chorale"  # chorale | folk | irish
    key: str = "C major"  # "<tonic> <major|minor>"
    tempo: float = 0.0  # quarter notes per minute; 0 = the style's default
    bars: int = 8  # length in 4/4 bars, clamped to [1, 64]
    temperature: float = 0.9  # sampling temperature
    top_k: int = 0  # 0 = full distribution
    seed: int = -1  # -1 = random; the seed used is reported
    instruments: tuple[int, ...] = ()  # GM program per part (soprano/melody first); () = style default
    audio_format: str = "MP3"  # compressed copy next to the WAV: MP3 | OGG
    model_id: str = ""  # "" = the bundled composer


@dataclass(frozen=True)
class ContinueRequest:
    midi_path: str | None = None  # an opening as MIDI ...
    audio_path: str | None = None  # ... or as a sung/played clip (pyin)
    style: str = "folk"
    bars: int = 8  # new bars after the opening
    key: str = "auto"  # "auto" = estimated from the opening
    tempo: float = 0.0  # 0 = from the file (MIDI tempo, or beat tracking of the audio)
    temperature: float = 0.9
    top_k: int = 0
    seed: int = -1
    instruments: tuple[int, ...] = ()
    audio_format: str = "MP3"
    model_id: str = ""


@dataclass(frozen=True)
class AnalyseRequest:
    audio_path: str | None = None  # any audio, or a generated WAV
    midi_path: str | None = None  # optional; rendered when no audio is given; drawn as a pianoroll


@dataclass(frozen=True)
class TextToMusicRequest:
    prompt: str
    duration_s: float = 8.0
    guidance_scale: float = 3.0  # classifier-free guidance (MusicGen's default)
    temperature: float = 1.0
    top_k: int = 250  # MusicGen's default
    seed: int = -1
    audio_format: str = "MP3"
    model_id: str = ""  # "" = the task default (the debug tiny model offline)


@dataclass(frozen=True)
class MusicFiles:
    midi: Path | None
    wav: Path
    compressed: Path  # MP3 or OGG
    pianoroll: Path | None = None


@dataclass(frozen=True)
class MusicResult:
    title: str
    audio: Audio
    files: MusicFiles
    params: dict[str, Any]  # everything saved with the record
    record_id: int
    score: symusic.Score | None = None  # the written MIDI (480 tpq), None for MusicGen
    opening_notes: int = 0  # continuation: how many notes came from the opening
    compute_s: float = 0.0  # wall time of compose (or generate) + render
    loudness: LoudnessResult | None = None  # LUFS and true peak before/after normalisation

    @property
    def summary(self) -> str:
        p = self.params
        parts = [self.title, f"{self.audio.duration_s:.1f} s"]
        if "key" in p:
            parts.append(f"{p['key']}, {p['tempo']:.0f} BPM, {p['bars']} bars")
        if "seed" in p:
            parts.append(f"seed {p['seed']}")
        if self.compute_s:
            parts.append(
                f"made in {self.compute_s:.2f} s ({self.audio.duration_s / self.compute_s:.0f}× realtime)"
            )
        return " · ".join(parts)


@dataclass(frozen=True)
class AnalysisResult:
    analysis: Analysis
    figures: dict[str, Path] = field(default_factory=dict)  # waveform, mel, pianoroll
    record_id: int = 0


# -- the pipeline --------------------------------------------------------------------------------


class MusicPipeline:
    def __init__(self, registry: ModelRegistry, store: OutputStore) -> None:
        self.registry = registry
        self.store = store

    # compose ---------------------------------------------------------------------------------
    def compose(self, request: ComposeRequest, cancel: CancelToken) -> Iterator[Event]:
        validate_compose(request)  # fail fast, before a model loads
        return stream_events(lambda emit: self._compose(request, cancel, emit), cancel)

    def _compose(self, request: ComposeRequest, cancel: CancelToken, emit: Emit) -> MusicResult:
        request, key, notices = validate_compose(request)
        for message in notices:
            emit(Notice(message))
        bundle = self._composer(request.model_id, emit)
        total = request.bars + 1
        emit(Started(total, f"compose · {request.style} · {key.name} · {request.bars} bars"))
        clock = EtaClock(total)
        t0 = time.perf_counter()

        def on_bar(done: int, _: int) -> None:
            emit(bar_step(done, request.bars, clock))

        voices = compose_voices(
            bundle,
            request.style,
            key,
            request.bars,
            request.temperature,
            request.seed,
            request.top_k,
            cancel,
            on_bar,
        )
        style = STYLE_DEFAULTS[request.style]
        score = finish_score(voices, key, request.tempo, request.instruments, request.bars, style["velocity"])
        params = asdict(request) | {"model_id": bundle.label or "music-composer", "mode": "compose"}
        title = f"{request.style} in {key.name}"
        return self._render_and_save(score, params, title, request.audio_format, cancel, emit, total, t0)

    # continue --------------------------------------------------------------------------------
    def continue_piece(self, request: ContinueRequest, cancel: CancelToken) -> Iterator[Event]:
        if not request.midi_path and not request.audio_path:
            raise UserError("Upload a MIDI file or an audio clip to continue.")
        check_common(request.style, request.temperature, request.audio_format, request.instruments)
        if request.key.strip().lower() != "auto":
            parse_key(request.key)
        if request.midi_path:
            read_midi(request.midi_path)  # corrupt/empty files fail here, before a model loads
        return stream_events(lambda emit: self._continue(request, cancel, emit), cancel)

    def _continue(self, request: ContinueRequest, cancel: CancelToken, emit: Emit) -> MusicResult:
        notices: list[str] = []
        bars = clamp_bars(request.bars, notices, "New length")
        seed = parse_seed(request.seed)
        seed = random.randint(0, MAX_SEED) if seed == -1 else seed
        # 1. the opening, from MIDI or from audio through pyin
        source = "midi" if request.midi_path else "audio"
        if request.midi_path:
            opening = opening_from_score(read_midi(request.midi_path), request.tempo)
        else:
            opening = self._opening_from_audio(request, emit)
        notices.extend(opening.notices)
        tempo = clamp_tempo(opening.tempo, STYLE_DEFAULTS[request.style]["tempo"], notices)
        for message in notices:
            emit(Notice(message))
        # 2. key: given, or estimated from the opening's pitch classes (Krumhansl-Kessler)
        if request.key.strip().lower() == "auto":
            key = estimate_key(pitch_class_histogram(voices_score(opening.voices)))
            emit(Notice(f"Opening key estimated as {key.name}.", "info"))
        else:
            key = parse_key(request.key)
        bundle = self._composer(request.model_id, emit)
        total = bars + 1
        emit(Started(total, f"continue · {request.style} · {key.name} · +{bars} bars"))
        clock = EtaClock(total)
        t0 = time.perf_counter()
        # 3. opening -> C/Am tokens -> the composer continues it
        normal = transpose_score(voices_score(opening.voices), -key.shift_from_normal)
        opening_ids = list(bundle.tokenizer.encode(normal).ids)
        settings = SampleSettings(bars, request.temperature, request.top_k, seed, len(opening.voices))

        def on_bar(done: int, _: int) -> None:
            emit(bar_step(done, bars, clock))

        body = sample(bundle, request.style, key.mode, settings, opening_ids, cancel, on_bar)
        generated = score_voices(transpose_score(bundle.tokenizer.decode(body), key.shift_from_normal))
        # 4. keep the opening as given; in each voice append only the new notes that start once
        #    that voice's last opening note has ended (and after the opening's last onset)
        last_onset = max(s for v in opening.voices for s, _, _ in v)
        voices = [list(v) for v in opening.voices]
        for index, notes in enumerate(generated[: len(voices)]):
            voice_end = max((s + d for s, d, _ in opening.voices[index]), default=0)
            voices[index].extend(n for n in notes if n[0] > last_onset and n[0] >= voice_end)
        instruments = _instruments(request.instruments, request.style)
        total_bars = opening.bars + bars
        style = STYLE_DEFAULTS[request.style]
        score = finish_score(voices, key, tempo, instruments, total_bars, style["velocity"], hold_last=True)
        opening_count = sum(len(v) for v in opening.voices)
        params = {
            "mode": f"continue-{source}",
            "source_file": Path(request.midi_path or request.audio_path or "").name,
            "style": request.style,
            "key": key.name,
            "tempo": tempo,
            "bars": total_bars,
            "new_bars": bars,
            "opening_bars": opening.bars,
            "opening_notes": opening_count,
            "temperature": request.temperature,
            "top_k": request.top_k,
            "seed": seed,
            "instruments": list(instruments),
            "audio_format": request.audio_format,
            "model_id": bundle.label or "music-composer",
        }
        title = f"continuation ({request.style}) in {key.name}"
        result = self._render_and_save(score, params, title, request.audio_format, cancel, emit, total, t0)
        return replace(result, opening_notes=opening_count)

    def _opening_from_audio(self, request: ContinueRequest, emit: Emit) -> Opening:
        audio = load_audio(request.audio_path or "", MAX_CONTINUE_AUDIO_S, PITCH_SR)
        if audio.notice:
            emit(Notice(audio.notice))
        if float(np.max(np.abs(audio.samples))) < 1e-4:
            raise UserError("No pitch found: the clip is silent.")
        emit(Notice("Tracking pitch with pyin…", "info"))
        tracked = track_pitch(audio)
        if not tracked.notes:
            raise UserError(
                "No pitch found in the clip: pyin heard no steady notes. Try a clearer melody, "
                "one voice or instrument, without much reverb."
            )
        tempo = float(request.tempo) or min(max(estimate_tempo(audio), 60.0), 180.0)
        score = notes_to_score(tracked.notes, tempo)
        opening = opening_from_score(score, tempo)
        message = f"Heard {len(tracked.notes)} notes ({tracked.voiced_fraction:.0%} of the clip voiced) at ≈{tempo:.0f} BPM."
        return replace(opening, notices=(*opening.notices, message))

    # analyse ---------------------------------------------------------------------------------
    def analyse(self, request: AnalyseRequest, cancel: CancelToken) -> Iterator[Event]:
        if not request.audio_path and not request.midi_path:
            raise UserError("Upload an audio file (or a MIDI file) to analyse, or compose something first.")
        if request.midi_path:
            read_midi(request.midi_path)
        return stream_events(lambda emit: self._analyse(request, cancel, emit), cancel)

    def _analyse(self, request: AnalyseRequest, cancel: CancelToken, emit: Emit) -> AnalysisResult:
        total = 4
        emit(Started(total, "analyse"))
        score = read_midi(request.midi_path) if request.midi_path else None
        # 1. audio: the upload, or the MIDI rendered
        if request.audio_path:
            audio = load_audio(request.audio_path, MAX_ANALYSE_S)
            if audio.notice:
                emit(Notice(audio.notice))
        else:
            assert score is not None
            rendered = render(score)
            audio = loaded_from(rendered)
        emit(Step(1, total, None, None, {"stage": "loaded"}))
        cancel.raise_if_cancelled()
        # 2. tempo, beats and key
        analysis = analyse_audio(audio)
        emit(Step(2, total, None, None, {"stage": "tempo and key"}))
        cancel.raise_if_cancelled()
        # 3. figures
        figures = {
            "waveform": self.store.write(
                ANALYSIS_TASK, ".png", lambda p: plot_waveform(audio, analysis.beats_s, p)
            ),
            "mel": self.store.write(ANALYSIS_TASK, ".png", lambda p: plot_mel(audio, p)),
        }
        emit(Step(3, total, None, None, {"stage": "plots"}))
        if score is not None:
            figures["pianoroll"] = self.store.write(
                ANALYSIS_TASK, ".png", lambda p: plot_pianoroll(score, p, "Pianoroll of the MIDI")
            )
        analysis.figures = figures
        params = {
            "audio": Path(request.audio_path).name if request.audio_path else "",
            "midi": Path(request.midi_path).name if request.midi_path else "",
            "tempo_bpm": analysis.tempo_bpm,
            "beats": len(analysis.beats_s),
            "key": analysis.key,
            "key_confidence": analysis.key_confidence,
            "duration_s": analysis.duration_s,
        }
        record = self.store.record(ANALYSIS_TASK, f"analysis: {analysis.key}", params, list(figures.values()))
        emit(Step(4, total, None, None, {"stage": "saved"}))
        return AnalysisResult(analysis, figures, record.id)

    # text to music (MusicGen) ----------------------------------------------------------------
    def text_to_music(self, request: TextToMusicRequest, cancel: CancelToken) -> Iterator[Event]:
        if not (request.prompt or "").strip():
            raise UserError(
                "The prompt is empty. Describe the music, e.g. 'calm lo-fi piano with soft drums'."
            )
        if request.audio_format not in AUDIO_FORMATS:
            raise UserError(f"Audio format must be one of {', '.join(AUDIO_FORMATS)}.")
        if not 0 <= float(request.guidance_scale) <= 15:
            raise UserError(f"Guidance must be between 0 and 15 (got {request.guidance_scale}).")
        parse_seed(request.seed)
        return stream_events(lambda emit: self._text_to_music(request, cancel, emit), cancel)

    def _text_to_music(self, request: TextToMusicRequest, cancel: CancelToken, emit: Emit) -> MusicResult:
        from pipelines.music.musicgen import MusicGenModel, generate_musicgen

        duration = float(request.duration_s)
        if not 1.0 <= duration <= MAX_MUSICGEN_S:
            clamped = min(max(duration, 1.0), MAX_MUSICGEN_S)
            emit(Notice(f"Duration {duration:g} s is outside 1–{MAX_MUSICGEN_S:g} s; using {clamped:g} s."))
            duration = clamped
        seed = parse_seed(request.seed)
        seed = random.randint(0, MAX_SEED) if seed == -1 else seed
        loaded = self.registry.load(request.model_id, TEXT_TASK)
        if loaded.notice:
            emit(Notice(loaded.notice))
        mg: MusicGenModel = loaded.model
        total = max(1, int(round(duration * mg.frame_rate)))
        emit(Started(total, f"MusicGen · {loaded.entry.display} · {duration:g} s"))
        clock = EtaClock(total)
        t0 = time.perf_counter()

        def on_frame(done: int, n: int) -> None:
            emit(Step(done, n, None, clock.eta(done), {"seconds": done / mg.frame_rate}))

        wave = generate_musicgen(
            mg,
            request.prompt.strip(),
            duration,
            float(request.guidance_scale),
            seed,
            cancel,
            on_frame,
            float(request.temperature),
            int(request.top_k),
        )
        audio, loudness = normalize_audio(Audio(np.repeat(wave[:, None], 2, axis=1), mg.sampling_rate))
        params = asdict(request) | {"duration_s": duration, "seed": seed, "model_id": loaded.entry.id}
        params |= loudness.as_params()
        files = self._save_audio(TEXT_TASK, audio, request.audio_format)
        record = self.store.record(
            TEXT_TASK, request.prompt.strip()[:200], params, [files.wav, files.compressed]
        )
        return MusicResult(
            request.prompt.strip()[:80],
            audio,
            files,
            params,
            record.id,
            None,
            0,
            time.perf_counter() - t0,
            loudness,
        )

    # shared ----------------------------------------------------------------------------------
    def _composer(self, model_id: str, emit: Emit) -> ComposerBundle:
        loaded = self.registry.load(model_id, TASK)
        if loaded.notice:
            emit(Notice(loaded.notice))
        return loaded.model

    def _save_audio(self, task: str, audio: Audio, fmt: str) -> MusicFiles:
        wav = self.store.write(task, ".wav", lambda p: write_audio(audio, p, "WAV"))
        compressed = self.store.write(task, "." + fmt.lower(), lambda p: write_audio(audio, p, fmt))
        return MusicFiles(None, wav, compressed)

    def _render_and_save(
        self,
        score: symusic.Score,
        params: dict[str, Any],
        title: str,
        fmt: str,
        cancel: CancelToken,
        emit: Emit,
        total: int,
        t0: float,
    ) -> MusicResult:
        cancel.raise_if_cancelled()
        if not have_soundfont_synth():
            emit(
                Notice(
                    "tinysoundfont is not installed: rendered with plain sine tones (pip install -r requirements.txt)."
                )
            )
        audio, loudness = normalize_audio(render(score))
        compute = time.perf_counter() - t0
        bars = total - 1  # the composed bars; the last step is the render
        emit(Step(total, total, None, 0.0, {"stage": "rendered", "bars": bars, "bars_total": bars}))
        midi = self.store.write(TASK, ".mid", lambda p: score.dump_midi(str(p)))
        files = self._save_audio(TASK, audio, fmt)
        roll = self.store.write(TASK, ".png", lambda p: plot_pianoroll(score, p, title))
        files = replace(files, midi=midi, pianoroll=roll)
        params = params | {
            "duration_s": round(audio.duration_s, 3),
            "notes": score.note_num(),
            "gm_programs": [t.program for t in score.tracks],
        }
        params |= loudness.as_params()
        record = self.store.record(TASK, title, params, [midi, files.wav, files.compressed, roll])
        return MusicResult(title, audio, files, params, record.id, score, 0, compute, loudness)


def bar_step(done: int, bars: int, clock: EtaClock) -> Step:
    """A composing Step: `bars` info counts the new bars done, never past the requested total.

    The pipeline's Step index runs to bars + 1 (the render is the last step), so a page must label
    bars from `info["bars"]` / `info["bars_total"]`, not from the index ("bar 9/8").
    """
    done = min(max(int(done), 0), bars)
    return Step(done, bars + 1, None, clock.eta(done), {"bars": done, "bars_total": bars})


def loaded_from(audio: Audio, sample_rate: int = 22050) -> LoadedAudio:
    """A rendered stereo Audio -> the mono LoadedAudio the analysis expects."""
    import librosa

    mono = librosa.resample(audio.mono, orig_sr=audio.sample_rate, target_sr=sample_rate, res_type="soxr_hq")
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    duration = len(mono) / sample_rate
    return LoadedAudio(mono, sample_rate, duration, duration)
