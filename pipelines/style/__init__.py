"""Style Transfer: 26 fast styles (blendable), any style image, Gatys high quality, and filters."""

from pipelines.style.filters import FILTERS
from pipelines.style.frames import FrameStyler
from pipelines.style.models import STYLE_NAMES, register_style_models, style_label, thumbnail_paths
from pipelines.style.options import StyleMode, limits_for, parse_blend
from pipelines.style.pipeline import NUM_STYLES, TASK, StylePipeline, StyleRequest, StyleResult

__all__ = [
    "FILTERS",
    "FrameStyler",
    "NUM_STYLES",
    "STYLE_NAMES",
    "TASK",
    "StyleMode",
    "StylePipeline",
    "StyleRequest",
    "StyleResult",
    "limits_for",
    "parse_blend",
    "register_style_models",
    "style_label",
    "thumbnail_paths",
]
