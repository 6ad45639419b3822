"""Music: compose with the embedded REMI composer, continue a melody, render, analyse, and MusicGen."""

from pipelines.music.limits import MAX_BARS, STYLE_DEFAULTS
from pipelines.music.loudness import LoudnessResult
from pipelines.music.models import register_music_models
from pipelines.music.pipeline import (
    TEXT_TASK,
    AnalyseRequest,
    AnalysisResult,
    ComposeRequest,
    ContinueRequest,
    MusicPipeline,
    MusicResult,
    TextToMusicRequest,
)
from pipelines.music.render import GM_CHOICES
from pipelines.music.tokens import KEYS, STYLES, VOICE_NAMES

__all__ = [
    "GM_CHOICES",
    "KEYS",
    "MAX_BARS",
    "STYLES",
    "STYLE_DEFAULTS",
    "TEXT_TASK",
    "VOICE_NAMES",
    "AnalyseRequest",
    "AnalysisResult",
    "ComposeRequest",
    "ContinueRequest",
    "LoudnessResult",
    "MusicPipeline",
    "MusicResult",
    "TextToMusicRequest",
    "register_music_models",
]
