"""Inpaint: are unmasked pixels kept, and what does the repaint cost against plain img2img?

On the embedded offline model (the row that must reach 40 dB) and on the tiny random SD (a latent
model: the VAE round trip shows in the repaint-only figure), one picture is inpainted (top-left
quarter masked, blur 8) and, side by side in the same run, redrawn with plain img2img at the same
size, steps and strength. PSNR is measured outside the blurred mask between input and result
(capped at 100 dB = identical pixels), and for the repaint alone, before the final paste-back, at
the model's working size, outside the hard mask and its 1-cell seam.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

from benchmarks.common import interleaved, temp_context
from pipelines.art.inpaint import InpaintOptions, prepare_inpaint, run_inpaint
from pipelines.art.models import DEBUG_ID, OFFLINE_ID
from pipelines.art.pipeline import ArtPipeline, ArtRequest
from studio.context import StudioContext
from studio.events import CancelToken

STEPS, STRENGTH = 25, 0.75


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 100.0 if mse == 0 else min(100.0, 10 * np.log10(255.0**2 / mse))


def quarter_mask(size: tuple[int, int]) -> Image.Image:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle((0, 0, size[0] // 2 - 1, size[1] // 2 - 1), fill=255)
    return mask


def measure(ctx: StudioContext, model_id: str, work: int, label: str) -> dict:
    art = ArtPipeline(ctx.registry, ctx.store, default_model=model_id)
    cfg = 2.0 if model_id == OFFLINE_ID else 7.0
    prompt = "a red circle in the middle in a blue sky"
    source = list(art.generate(ArtRequest(prompt, steps=STEPS, seed=3, guidance_scale=cfg), CancelToken()))
    image = source[-1].result.images[0].image
    mask = quarter_mask(image.size)
    options = InpaintOptions(mask=mask, mask_blur=8)
    common = {"steps": STEPS, "seed": 1, "guidance_scale": cfg, "strength": STRENGTH, "init_image": image}
    inpaint = ArtRequest("a yellow star in a blue sky", inpaint=options, **common)
    img2img = ArtRequest("a yellow star in a blue sky", **common)

    def last(request: ArtRequest) -> Image.Image:
        return list(art.generate(request, CancelToken()))[-1].result.images[0].image

    result = last(inpaint)
    keep = np.asarray(prepare_inpaint(image, options).blurred) == 0
    masked = np.asarray(mask) > 0
    out, inp = np.asarray(result), np.asarray(image)
    # the repaint alone (no paste-back) at the working size
    small = image.resize((work, work), Image.Resampling.BOX)
    job = prepare_inpaint(small, InpaintOptions(mask=quarter_mask(small.size), mask_blur=0))
    pipe = ctx.registry.load(model_id, "art").model.pipe
    kwargs = {
        "prompt": inpaint.prompt,
        "num_inference_steps": STEPS,
        "guidance_scale": cfg,
        "generator": torch.Generator("cpu").manual_seed(1),
    }
    if model_id != OFFLINE_ID:  # the latent repaint runs on the img2img view of the pipeline
        from diffusers import DDIMScheduler

        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    raw = run_inpaint(
        pipe, job, (work, work), kwargs, STRENGTH, "original", lambda p, i, t, k: k, 1, keep_outside=False
    )
    seam = max(1, work // 32) + 1
    keep_small = np.asarray(job.mask) == 0
    keep_small[work // 2 - seam : work // 2 + seam, :] = keep_small[
        :, work // 2 - seam : work // 2 + seam
    ] = False
    times = interleaved({"inpaint": lambda: last(inpaint), "img2img": lambda: last(img2img)}, rounds=5)
    return {
        "model": label,
        "size": f"{image.width}x{image.height}",
        "steps": STEPS,
        "strength": STRENGTH,
        "mask": "top-left quarter, blur 8",
        "unmasked_psnr_db": round(psnr(out[keep], inp[keep]), 2),
        "unmasked_fraction": round(float(keep.mean()), 3),
        "masked_mean_abs_change": round(float(np.abs(out[masked].astype(int) - inp[masked]).mean()), 2),
        f"repaint_only_unmasked_psnr_db_{work}px": round(
            psnr(np.asarray(raw)[keep_small], np.asarray(job.canvas)[keep_small]), 2
        ),
        "seconds_inpaint": round(times["inpaint"], 4),
        "seconds_img2img": round(times["img2img"], 4),
        "inpaint_over_img2img_ratio": round(times["inpaint"] / times["img2img"], 3),
    }


def run() -> list[dict]:
    ctx = temp_context()
    return [
        measure(ctx, OFFLINE_ID, 32, f"{OFFLINE_ID} (32 px pixel-space, shown at 256 px)"),
        measure(ctx, DEBUG_ID, 64, f"{DEBUG_ID} (tiny random latent SD, 64 px)"),
    ]
