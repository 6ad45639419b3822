"""What a music request may ask for: bounds, style defaults, and the checks that clamp or refuse."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pipelines.music.tokens import MAX_VOICES, STYLES, Key
from studio.events import UserError
from studio.inputs import MAX_SEED, parse_seed

if TYPE_CHECKING:
    from pipelines.music.pipeline import ComposeRequest


MIN_BARS, MAX_BARS = 1, 64  # a request outside is clamped with a notice
MIN_TEMPO, MAX_TEMPO = 30.0, 240.0  # quarter notes per minute
MAX_OPENING_BARS = 16  # a longer MIDI opening is cut to its first 16 bars
MAX_CONTINUE_AUDIO_S = 30.0  # pyin costs ~1 s per 10 s of audio on one thread
MAX_ANALYSE_S = 600.0  # longer uploads are trimmed to 10 minutes
MAX_MIDI_BYTES = 2_000_000
MAX_MUSICGEN_S = 30.0  # MusicGen was trained on 30 s clips
OUTPUT_MIDI_TPQ = 480  # what DAWs expect
AUDIO_FORMATS = ("MP3", "OGG")

STYLE_DEFAULTS: dict[str, dict[str, Any]] = {
    "chorale": {"tempo": 80.0, "voices": 4, "instruments": (19, 19, 19, 19), "velocity": 80},
    "folk": {"tempo": 110.0, "voices": 1, "instruments": (73, 73, 73, 73), "velocity": 90},
    "irish": {"tempo": 120.0, "voices": 1, "instruments": (110, 110, 110, 110), "velocity": 90},
}
_FIFTHS_MAJOR = {0: 0, 7: 1, 2: 2, 9: 3, 4: 4, 11: 5, 6: 6, 5: -1, 10: -2, 3: -3, 8: -4, 1: -5}


# -- validation ----------------------------------------------------------------------------------


def parse_key(text: str) -> Key:
    try:
        return Key.parse(text)
    except ValueError:
        raise UserError(
            f"Unknown key {text!r}: use a tonic and a mode, like 'D minor' or 'Bb major'."
        ) from None


def clamp_bars(bars: Any, notices: list[str], what: str = "Length") -> int:
    try:
        value = float(bars)
    except (TypeError, ValueError):
        raise UserError(f"{what} must be a number of bars (got {str(bars)[:40]!r}).") from None
    if not math.isfinite(value):
        raise UserError(f"{what} must be a finite number of bars.")
    n = int(round(value))
    if n < MIN_BARS or n > MAX_BARS:
        clamped = min(max(n, MIN_BARS), MAX_BARS)
        notices.append(f"{what} of {n:,} bars is outside {MIN_BARS}–{MAX_BARS}; using {clamped}.")
        return clamped
    return n


def clamp_tempo(tempo: float, default: float, notices: list[str]) -> float:
    tempo = float(tempo or 0) or default
    if not MIN_TEMPO <= tempo <= MAX_TEMPO:
        clamped = min(max(tempo, MIN_TEMPO), MAX_TEMPO)
        notices.append(f"Tempo {tempo:g} BPM is outside {MIN_TEMPO:g}–{MAX_TEMPO:g}; using {clamped:g}.")
        tempo = clamped
    return tempo


def check_common(style: str, temperature: float, audio_format: str, instruments: tuple[int, ...]) -> None:
    if style not in STYLES:
        raise UserError(f"Unknown style {style!r}. Choose one of: {', '.join(STYLES)}.")
    if not 0.05 <= float(temperature) <= 2.0:
        raise UserError(f"Temperature must be between 0.05 and 2 (got {temperature}).")
    if audio_format not in AUDIO_FORMATS:
        raise UserError(f"Audio format must be one of {', '.join(AUDIO_FORMATS)}.")
    for program in instruments:
        if not 0 <= int(program) <= 127:
            raise UserError(f"GM instrument numbers are 0–127 (got {program}).")


def validate_compose(request: ComposeRequest) -> tuple[ComposeRequest, Key, list[str]]:
    notices: list[str] = []
    check_common(request.style, request.temperature, request.audio_format, request.instruments)
    key = parse_key(request.key)
    bars = clamp_bars(request.bars, notices)
    tempo = clamp_tempo(request.tempo, STYLE_DEFAULTS[request.style]["tempo"], notices)
    seed = parse_seed(request.seed)
    seed = random.randint(0, MAX_SEED) if seed == -1 else seed
    instruments = _instruments(request.instruments, request.style)
    cleaned = replace(request, key=key.name, bars=bars, tempo=tempo, seed=seed, instruments=instruments)
    return cleaned, key, notices


def _instruments(given: tuple[int, ...], style: str) -> tuple[int, ...]:
    default = STYLE_DEFAULTS[style]["instruments"]
    out = [int(p) for p in given][:MAX_VOICES]
    return tuple(out + list(default[len(out) :]))
