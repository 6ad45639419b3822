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
from pipelines.video.models import register_video_models
from pipelines.video.pipeline import TASK, AnimateResult, VideoPipeline
from pipelines.video.probe import VideoInfo
from pipelines.video.probe import probe as probe_clip
from pipelines.video.soundtrack import FITS, SOURCES, SoundtrackRequest, iter_history_choices
from pipelines.video.stylize import StylizeRequest, StylizeResult
from pipelines.video.text_to_video import T2V_TASK, TextToVideoRequest, TextToVideoResult

__all__ = [
    "DEFAULT_LIMITS",
    "FITS",
    "INTERPOLATIONS",
    "MAX_FRAMES",
    "MAX_KEYFRAMES",
    "SOURCES",
    "T2V_TASK",
    "TASK",
    "AnimateRequest",
    "AnimateResult",
    "Keyframe",
    "StylizeRequest",
    "StylizeResult",
    "SoundtrackRequest",
    "TextToVideoRequest",
    "TextToVideoResult",
    "VideoInfo",
    "VideoLimits",
    "VideoPipeline",
    "iter_history_choices",
    "parse_keyframes",
    "probe_clip",
    "register_video_models",
]
