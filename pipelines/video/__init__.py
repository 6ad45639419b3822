"""Video: stylize a clip with temporal consistency, prompt-travel animation, hub text-to-video."""

from pipelines.video.animate import (
    INTERPOLATIONS,
    MAX_FRAMES,
    MAX_KEYFRAMES,
    AnimateRequest,
    Keyframe,
    parse_keyframes,
)
from pipelines.video.io import DEFAULT_LIMITS, VideoLimits
from pipelines.video.pipeline import TASK, AnimateResult, VideoPipeline
from pipelines.video.soundtrack import FITS, SOURCES, SoundtrackRequest, iter_history_choices
from pipelines.video.stylize import StylizeRequest, StylizeResult

__all__ = [
    "DEFAULT_LIMITS",
    "FITS",
    "INTERPOLATIONS",
    "MAX_FRAMES",
    "MAX_KEYFRAMES",
    "SOURCES",
    "TASK",
    "AnimateRequest",
    "AnimateResult",
    "Keyframe",
    "StylizeRequest",
    "StylizeResult",
    "SoundtrackRequest",
    "VideoLimits",
    "VideoPipeline",
    "iter_history_choices",
    "parse_keyframes",
]
