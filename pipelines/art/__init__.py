"""Art Platform: text-to-image and img2img on diffusers pipelines, with live latent previews."""

from pipelines.art.models import register_art_models
from pipelines.art.pipeline import (
    SAMPLERS,
    TASK,
    UPSCALE_MODES,
    ArtPipeline,
    ArtRequest,
    ArtResult,
    load_init_image,
)

__all__ = [
    "SAMPLERS",
    "TASK",
    "UPSCALE_MODES",
    "ArtPipeline",
    "ArtRequest",
    "ArtResult",
    "load_init_image",
    "register_art_models",
]
