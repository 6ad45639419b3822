"""Art Platform: text-to-image and img2img on diffusers pipelines, with live latent previews."""

from pipelines.art.latent_preview import LatentPreviewer, previewer_for
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
from pipelines.art.travel import PromptTravel, TextEmbedding, TravelSession

__all__ = [
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
