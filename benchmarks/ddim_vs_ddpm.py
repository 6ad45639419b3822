"""Why DDIM: wall time of 1000 DDPM steps vs 25 DDIM steps on the same tiny pipeline, one run."""

from __future__ import annotations

from benchmarks.common import interleaved, temp_context
from pipelines.art.models import DEBUG_ID
from pipelines.art.pipeline import ArtPipeline, ArtRequest
from studio.events import CancelToken


def run() -> list[dict]:
    ctx = temp_context()
    art = ArtPipeline(ctx.registry, ctx.store, default_model=DEBUG_ID)

    def generate(sampler: str, steps: int):
        request = ArtRequest("a red circle", sampler=sampler, steps=steps, seed=1, preview_every=0)
        return lambda: list(art.generate(request, CancelToken()))

    # ArtRequest caps steps at 150 (A1111's slider), so the 1000-step DDPM run calls diffusers directly
    pipe = ctx.registry.load(DEBUG_ID, "art").model.pipe
    import torch
    from diffusers import DDPMScheduler

    # "trailing": with SD's steps_offset=1 (forced by the pipeline), "leading" spacing asks for t=1000
    ddpm_scheduler = DDPMScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing")
    ddpm = type(pipe)(**{**pipe.components, "scheduler": ddpm_scheduler}, requires_safety_checker=False)
    ddpm.set_progress_bar_config(disable=True)

    def ddpm_1000():
        return ddpm("a red circle", num_inference_steps=1000, generator=torch.Generator().manual_seed(1))

    times = interleaved({"ddim_25": generate("DDIM", 25), "ddpm_1000": ddpm_1000}, rounds=2, warmup=0)
    return [
        {
            "pipeline": "tiny random SD (debug-tiny-sd), native 64x64",
            "seconds_ddim_25": round(times["ddim_25"], 4),
            "seconds_ddpm_1000": round(times["ddpm_1000"], 4),
            "ddpm1000_over_ddim25_ratio": round(times["ddpm_1000"] / times["ddim_25"], 2),
        }
    ]
