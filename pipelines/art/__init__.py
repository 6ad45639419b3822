"""Art Platform: text-to-image and img2img on diffusers pipelines, with live latent previews."""

from pipelines.art.clip_guidance import CLIP_ENV, ClipGuidance, clip_score
from pipelines.art.hires import HIRES_UPSCALERS, HiresOptions
from pipelines.art.images import load_init_image
from pipelines.art.inpaint import MASKED_CONTENT, InpaintOptions
from pipelines.art.latent_preview import LatentPreviewer, previewer_for
from pipelines.art.lora import LoraSpec, parse_lora_text
from pipelines.art.models import model_vocabulary, register_art_models
from pipelines.art.pipeline import (
    SAMPLERS,
    TASK,
    UPSCALE_MODES,
    ArtPipeline,
    ArtRequest,
    ArtResult,
)
from pipelines.art.presets import StylePreset, apply_styles, load_styles, style_names
from pipelines.art.travel import PromptTravel, TextEmbedding, TravelSession
from pipelines.art.xyz import AXIS_TYPES, MAX_CELLS, Axis, XYZPlot, XYZRequest, XYZResult

__all__ = [
    "model_vocabulary",
    "CLIP_ENV",
    "ClipGuidance",
    "clip_score",
    "HIRES_UPSCALERS",
    "MASKED_CONTENT",
    "HiresOptions",
    "InpaintOptions",
    "LoraSpec",
    "parse_lora_text",
    "AXIS_TYPES",
    "MAX_CELLS",
    "Axis",
    "StylePreset",
    "XYZPlot",
    "XYZRequest",
    "XYZResult",
    "apply_styles",
    "load_styles",
    "style_names",
    "SAMPLERS",
    "TASK",
    "UPSCALE_MODES",
    "ArtPipeline",
    "ArtRequest",
    "ArtResult",
    "LatentPreviewer",
    "PromptTravel",
    "TextEmbedding",
    "TravelSession",
    "load_init_image",
    "previewer_for",
    "register_art_models",
]
