"""Inpaint on the embedded offline model: are unmasked pixels kept, and what does the repaint cost?

One picture drawn by the model is inpainted (top-left quarter masked, blur 8) and, side by side in
the same run, redrawn with plain img2img at the same size, steps and strength. PSNR is measured
outside the blurred mask between the input and the result (capped at 100 dB: identical pixels),
and also for the repaint alone, before the final paste-back, at the model's 32 px working size.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

from benchmarks.common import interleaved, temp_context
from pipelines.art.inpaint import InpaintOptions, prepare_inpaint, run_inpaint
from pipelines.art.models import OFFLINE_ID
from pipelines.art.pipeline import ArtPipeline, ArtRequest
from studio.events import CancelToken

STEPS, STRENGTH = 25, 0.75


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 100.0 if mse == 0 else min(100.0, 10 * np.log10(255.0**2 / mse))


def run() -> list[dict]:
    ctx = temp_context()
    art = ArtPipeline(ctx.registry, ctx.store, default_model=OFFLINE_ID)
    prompt = "a red circle in the middle in a blue sky"
    source = list(art.generate(ArtRequest(prompt, steps=STEPS, seed=3, guidance_scale=2.0), CancelToken()))
    image = source[-1].result.images[0].image  # 256 px (32 px drawn, shown x8)
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).rectangle((0, 0, image.width // 2 - 1, image.height // 2 - 1), fill=255)
    options = InpaintOptions(mask=mask, mask_blur=8)
    common = {"steps": STEPS, "seed": 1, "guidance_scale": 2.0, "strength": STRENGTH, "init_image": image}
    inpaint = ArtRequest("a yellow star in a blue sky", inpaint=options, **common)
    img2img = ArtRequest("a yellow star in a blue sky", **common)

    def last(request: ArtRequest) -> Image.Image:
        return list(art.generate(request, CancelToken()))[-1].result.images[0].image

    result = last(inpaint)
    keep = np.asarray(prepare_inpaint(image, options).blurred) == 0
    masked = np.asarray(mask) > 0
    out, inp = np.asarray(result), np.asarray(image)
    # the repaint alone (no paste-back), at the 32 px working size, outside the hard mask and its seam
    job = prepare_inpaint(
        image.resize((32, 32), Image.Resampling.BOX), InpaintOptions(mask=mask, mask_blur=0)
    )
    pipe = ctx.registry.load(OFFLINE_ID, "art").model.pipe
    kwargs = {
        "prompt": inpaint.prompt,
        "num_inference_steps": STEPS,
        "guidance_scale": 2.0,
        "generator": torch.Generator("cpu").manual_seed(1),
    }
    raw = run_inpaint(
        pipe, job, (32, 32), kwargs, STRENGTH, "original", lambda p, i, t, k: k, 1, keep_outside=False
    )
    keep32 = np.asarray(job.mask) == 0
    keep32[15:18, :] = keep32[:, 15:18] = False
    times = interleaved({"inpaint": lambda: last(inpaint), "img2img": lambda: last(img2img)}, rounds=5)
    return [
        {
            "model": f"{OFFLINE_ID} (32 px pixel-space, shown at 256 px)",
            "size": f"{image.width}x{image.height}",
            "steps": STEPS,
            "strength": STRENGTH,
            "mask": "top-left quarter, blur 8",
            "unmasked_psnr_db": round(psnr(out[keep], inp[keep]), 2),
            "unmasked_fraction": round(float(keep.mean()), 3),
            "masked_mean_abs_change": round(float(np.abs(out[masked].astype(int) - inp[masked]).mean()), 2),
            "repaint_only_unmasked_psnr_db_32px": round(
                psnr(np.asarray(raw)[keep32], np.asarray(job.canvas)[keep32]), 2
            ),
            "seconds_inpaint": round(times["inpaint"], 4),
            "seconds_img2img": round(times["img2img"], 4),
            "inpaint_over_img2img_ratio": round(times["inpaint"] / times["img2img"], 3),
        }
    ]
