"""Cost of live previews: linear latent->RGB every step, and a full VAE decode every step, vs none.

All three run through the whole streaming path (worker thread, events, callback) on the same tiny
SD pipeline, interleaved in one run; the ratios are what matter (absolute times are noisy here).
"""

from __future__ import annotations

import torch

from benchmarks.common import interleaved, temp_context
from pipelines.art.models import DEBUG_ID
from pipelines.art.pipeline import ArtPipeline, ArtRequest
from studio.events import CancelToken


def run() -> list[dict]:
    ctx = temp_context()
    art = ArtPipeline(ctx.registry, ctx.store, default_model=DEBUG_ID)
    base = ArtRequest("a red circle on a blue background", steps=25, seed=1, width=128, height=128)

    def generate(preview_every: int, full_decode_every: int):
        request = ArtRequest(
            **{**base.__dict__, "preview_every": preview_every, "full_decode_every": full_decode_every}
        )
        return lambda: list(art.generate(request, CancelToken()))

    times = interleaved(
        {"none": generate(0, 0), "linear": generate(1, 0), "full_decode": generate(0, 1)}, rounds=7
    )
    # the same overhead from its parts, which is far less noisy on a shared box than whole runs:
    # the previewer alone vs one denoising step (the UNet call with CFG) on the same latents
    model = ctx.registry.load(DEBUG_ID, "art").model
    latents = torch.randn(1, 4, base.height // 2, base.width // 2)
    text = torch.randn(2, 77, model.pipe.unet.config.cross_attention_dim)
    with torch.no_grad():
        parts = interleaved(
            {
                "preview": lambda: model.previewer(latents),
                "unet_step": lambda: model.pipe.unet(torch.cat([latents] * 2), 500, text),
            },
            rounds=30,
        )
    return [
        {
            "pipeline": "tiny random SD (debug-tiny-sd), 128x128, 25 DDIM steps",
            "seconds_no_preview": round(times["none"], 4),
            "seconds_linear_preview": round(times["linear"], 4),
            "seconds_full_decode": round(times["full_decode"], 4),
            "preview_overhead_ratio": round(times["linear"] / times["none"], 4),
            "full_decode_overhead_ratio": round(times["full_decode"] / times["none"], 4),
            "linear_preview_ms_per_step": round(parts["preview"] * 1000, 3),
            "unet_step_ms": round(parts["unet_step"] * 1000, 3),
            "preview_overhead_ratio_from_parts": round(1 + parts["preview"] / parts["unet_step"], 4),
            "goal_preview_overhead_ratio": 1.03,
        }
    ]
