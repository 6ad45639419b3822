"""Registry entries for hub text-to-video, plus tiny random debug pipelines built from configs.

Hub entries load with the ordinary `from_pretrained`: a text-to-video-ms folder as a
TextToVideoSDPipeline, an AnimateDiff motion adapter on top of Stable Diffusion 1.5. The debug
entries are AnimateDiff and text-to-video-ms pipelines with tiny random weights (the shapes of
diffusers' own tests): they make noise, but run every code path offline in a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.memory import apply_plan_to_diffusers
from pipelines.testing import save_tiny_video_pipeline
from pipelines.video.text_to_video import T2V_TASK, TextToVideoModel, wrap_video_pipeline
from studio.device import DevicePlan
from studio.registry import ModelEntry, ModelRegistry, Source

DEBUG_ANIMATEDIFF_ID = "debug-tiny-animatediff"
DEBUG_T2V_MS_ID = "debug-tiny-text-to-video-ms"
ANIMATEDIFF_BASE = (
    "stable-diffusion-v1-5/stable-diffusion-v1-5"  # what the v1-5 motion adapters were trained on
)
HUB_SUGGESTIONS = {
    "guoyww/animatediff-motion-adapter-v1-5-2": (
        "AnimateDiff v1-5-2 on SD 1.5 (hub, ~5 GB)",
        5200,
        "apache-2.0 (adapter) + creativeml-openrail-m (SD 1.5)",
    ),
    "ali-vilab/text-to-video-ms-1.7b": ("ModelScope text-to-video 1.7B (hub, ~7 GB)", 7000, "cc-by-nc-4.0"),
}


def load_hub_video(entry: ModelEntry, plan: DevicePlan) -> TextToVideoModel:
    """A motion adapter id -> AnimateDiff on SD 1.5; anything else -> its own pipeline class."""
    from diffusers import AnimateDiffPipeline, DiffusionPipeline, MotionAdapter

    if "motion-adapter" in entry.path or "animatediff" in entry.path.lower():
        adapter = MotionAdapter.from_pretrained(entry.path, dtype=plan.dtype)
        pipe = AnimateDiffPipeline.from_pretrained(ANIMATEDIFF_BASE, motion_adapter=adapter, dtype=plan.dtype)
    else:
        pipe = DiffusionPipeline.from_pretrained(entry.path, dtype=plan.dtype)
    if not hasattr(pipe, "unet") or "num_frames" not in _call_parameters(pipe):
        raise ValueError(f"{entry.path} is not a text-to-video pipeline")
    apply_plan_to_diffusers(pipe, plan)
    return wrap_video_pipeline(pipe, entry.display)


def _call_parameters(pipe: Any) -> set[str]:
    import inspect

    return set(inspect.signature(pipe.__call__).parameters)


def register_video_models(registry: ModelRegistry, data_dir: Path) -> None:
    """Register the text-to-video models; nothing is loaded here."""

    def load_debug(entry: ModelEntry, plan: DevicePlan) -> TextToVideoModel:
        from diffusers import DiffusionPipeline

        kind = "animatediff" if entry.id == DEBUG_ANIMATEDIFF_ID else "t2v-ms"
        folder = save_tiny_video_pipeline(kind, Path(data_dir) / "models" / entry.id)
        pipe = DiffusionPipeline.from_pretrained(folder, dtype=plan.dtype)
        return wrap_video_pipeline(pipe, entry.display)

    registry.register(
        ModelEntry(
            DEBUG_ANIMATEDIFF_ID,
            T2V_TASK,
            Source.BUNDLED,
            load_debug,
            approx_mb=3,
            license="Apache-2.0 (random weights)",
            label="Debug: tiny random AnimateDiff (makes noise, proves the plumbing)",
        ),
        default=True,
    )
    registry.register(
        ModelEntry(
            DEBUG_T2V_MS_ID,
            T2V_TASK,
            Source.BUNDLED,
            load_debug,
            approx_mb=3,
            license="Apache-2.0 (random weights)",
            label="Debug: tiny random text-to-video-ms (UNet3D; noise)",
        )
    )
    for hub_id, (label, mb, license_name) in HUB_SUGGESTIONS.items():
        registry.register(ModelEntry(hub_id, T2V_TASK, Source.HUB, load_hub_video, mb, license_name, label))
    registry.set_hub_loader(T2V_TASK, load_hub_video)
