"""Inpaint and outpaint for any Art model, the way A1111 does it.

- Hub/local checkpoints with a 9-channel inpainting UNet (SD 1.x/2.x "-inpainting") run diffusers'
  `StableDiffusionInpaintPipeline`.
- Every other model (any SD checkpoint, the embedded pixel-space model) uses the generic repaint
  approach: img2img where, after every denoising step, the known (unmasked) region is replaced by
  the original image noised to the current noise level (`scheduler.add_noise`), so only the masked
  region is invented and it stays coherent with its surroundings.
- In both cases the result is pasted back into the full-resolution canvas through the blurred mask
  (A1111's "apply overlay"): outside the blurred mask the output equals the input exactly.

Outpaint extends the canvas (edge pixels repeated) and masks the new border, then inpaints.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

from studio.events import UserError

log = logging.getLogger(__name__)

MASKED_CONTENT = ("original", "fill", "latent noise", "latent nothing")  # A1111's choices
MAX_MASK_BLUR = 64
MAX_OUTPAINT = 1024  # pixels added on one side


@dataclass(frozen=True)
class InpaintOptions:
    mask: Image.Image | None = None  # white/opaque = repaint; any size (resized with a notice)
    mask_blur: int = 4  # Gaussian blur radius of the mask, canvas pixels
    masked_content: str = "original"  # what the masked region starts from (see MASKED_CONTENT)
    only_masked: bool = False  # A1111 "Only masked": repaint a crop around the mask at full model size
    only_masked_padding: int = 32  # pixels of context kept around the mask's bounding box
    outpaint: tuple[int, int, int, int] = (0, 0, 0, 0)  # pixels added (left, top, right, bottom)


@dataclass(frozen=True)
class InpaintJob:
    """The canvas and masks a request resolves to, at full resolution."""

    canvas: Image.Image  # RGB, after any outpaint extension
    mask: Image.Image  # L, 0/255: the region to repaint
    blurred: Image.Image  # L, the blurred mask used for blending and the final composite
    region: tuple[int, int, int, int]  # (left, top, right, bottom) of the canvas that is processed
    notices: tuple[str, ...] = ()


def mask_from_image(image: Image.Image) -> Image.Image:
    """Any mask picture -> L 0/255: the alpha channel when it has one (a painted layer), else luminance."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        alpha = image.convert("RGBA").getchannel("A")
        if alpha.getextrema() != (255, 255):
            return alpha.point(lambda v: 255 if v >= 128 else 0)
    return image.convert("L").point(lambda v: 255 if v >= 128 else 0)


def outpaint_canvas(
    image: Image.Image, left: int, top: int, right: int, bottom: int
) -> tuple[Image.Image, Image.Image]:
    """Grow the canvas by the given pixels; the new border repeats the edge pixels and is masked."""
    array = np.asarray(image.convert("RGB"))
    grown = np.pad(array, ((top, bottom), (left, right), (0, 0)), mode="edge")
    mask = np.full(grown.shape[:2], 255, dtype=np.uint8)
    mask[top : top + array.shape[0], left : left + array.shape[1]] = 0
    return Image.fromarray(grown), Image.fromarray(mask)


def prepare_inpaint(image: Image.Image | None, options: InpaintOptions) -> InpaintJob:
    """Check the inputs and build the full-resolution canvas and masks; UserError on bad input."""
    if image is None:
        raise UserError("Inpaint needs an image: upload or paste one into the inpaint editor.")
    if options.masked_content not in MASKED_CONTENT:
        raise UserError(f"Masked content must be one of: {', '.join(MASKED_CONTENT)}.")
    if not 0 <= int(options.mask_blur) <= MAX_MASK_BLUR:
        raise UserError(f"Mask blur must be between 0 and {MAX_MASK_BLUR} px (got {options.mask_blur}).")
    if any(not 0 <= int(side) <= MAX_OUTPAINT for side in options.outpaint):
        raise UserError(f"Outpaint adds 0 to {MAX_OUTPAINT} px per side (got {options.outpaint}).")
    if not 0 <= int(options.only_masked_padding) <= 512:
        raise UserError("'Only masked' padding must be between 0 and 512 px.")
    image = image.convert("RGB")
    notices: list[str] = []
    # 1. the painted mask, fitted to the image
    if options.mask is not None:
        mask = mask_from_image(options.mask)
        if mask.size != image.size:
            notices.append(
                f"The mask was {mask.size[0]}×{mask.size[1]} px but the image is "
                f"{image.size[0]}×{image.size[1]}; the mask was resized to fit."
            )
            mask = mask.resize(image.size, Image.Resampling.NEAREST)
    else:
        mask = Image.new("L", image.size, 0)
    # 2. outpaint: a bigger canvas whose new border is masked as well
    left, top, right, bottom = (int(v) for v in options.outpaint)
    if left or top or right or bottom:
        canvas, border = outpaint_canvas(image, left, top, right, bottom)
        grown = Image.new("L", canvas.size, 0)
        grown.paste(mask, (left, top))
        mask = Image.fromarray(np.maximum(np.asarray(grown), np.asarray(border)))
    else:
        canvas = image
    if mask.getextrema()[1] == 0:
        raise UserError(
            "The mask is empty: paint over the region to repaint (or set outpaint pixels) and try again."
        )
    blurred = mask.filter(ImageFilter.GaussianBlur(options.mask_blur)) if options.mask_blur else mask
    region = (0, 0, *canvas.size)
    if options.only_masked:
        region = crop_region(blurred, options.only_masked_padding)
    return InpaintJob(canvas, mask, blurred, region, tuple(notices))


def crop_region(mask: Image.Image, padding: int) -> tuple[int, int, int, int]:
    """Bounding box of the mask plus padding, squared up (models draw squares best), inside the canvas."""
    left, top, right, bottom = mask.getbbox() or (0, 0, *mask.size)
    left, top = max(left - padding, 0), max(top - padding, 0)
    right, bottom = min(right + padding, mask.width), min(bottom + padding, mask.height)
    # grow the shorter side towards a square, as far as the canvas allows
    side = max(right - left, bottom - top)
    for lo, hi, limit in ((0, 2, mask.width), (1, 3, mask.height)):
        box = [left, top, right, bottom]
        extra = min(side, limit) - (box[hi] - box[lo])
        box[lo] = max(box[lo] - extra // 2, 0)
        box[hi] = min(box[lo] + min(side, limit), limit)
        box[lo] = box[hi] - min(side, limit)
        left, top, right, bottom = box
    return left, top, right, bottom


def processing_size(
    job: InpaintJob, native: int, requested: tuple[int, int], max_side: int
) -> tuple[int, int]:
    """The size the model draws at: what the user asked for, else the region's size (whole canvas)
    or the model's native size ("only masked" repaints a small crop at full detail), in multiples of 8."""
    if requested[0] and requested[1]:
        return requested
    w, h = job.region[2] - job.region[0], job.region[3] - job.region[1]
    scale = min(max_side / max(w, h), 1.0)
    if (w, h) != job.canvas.size:  # a crop: draw it at the model's native size
        scale = native / max(w, h)
    return max(8, round(w * scale / 8) * 8), max(8, round(h * scale / 8) * 8)


def fill_masked(image: Image.Image, mask: Image.Image) -> Image.Image:
    """A1111 "fill": the masked region painted with the surrounding colours (OpenCV Telea inpainting)."""
    import cv2

    radius = max(3, min(image.size) // 16)
    filled = cv2.inpaint(np.asarray(image), np.asarray(mask), radius, cv2.INPAINT_TELEA)
    return Image.fromarray(filled)


def composite(canvas: Image.Image, drawn: Image.Image, job: InpaintJob) -> Image.Image:
    """Paste the drawn region back and keep the input wherever the blurred mask is 0."""
    left, top, right, bottom = job.region
    pasted = canvas.copy()
    pasted.paste(
        drawn.convert("RGB").resize((right - left, bottom - top), Image.Resampling.LANCZOS), (left, top)
    )
    return Image.composite(pasted, canvas, job.blurred)


def _to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB -> [1, 3, H, W] in [-1, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)


class RepaintBlend:
    """After every step, put back the known region noised to the level of the current sample.

    `latents` is the sample after the scheduler step at timestep t, so it sits at the *next*
    timestep of the schedule; after the last step the known region is the clean original.
    """

    def __init__(self, known: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor) -> None:
        self.known, self.mask, self.noise = known, mask, noise  # mask: 1 = repaint

    def __call__(self, pipe: Any, t: Any, latents: torch.Tensor) -> torch.Tensor:
        timesteps = pipe.scheduler.timesteps
        where = (timesteps == t).nonzero()
        position = int(where[0, 0]) + 1 if len(where) else len(timesteps)
        known = self.known.to(latents.dtype)
        if position < len(timesteps):
            known = pipe.scheduler.add_noise(
                known, self.noise.to(latents.dtype), timesteps[position : position + 1]
            )
        return known * (1 - self.mask) + latents * self.mask


def is_inpaint_unet(pipe: Any) -> bool:
    """A dedicated inpainting checkpoint: the UNet takes latents + mask + masked-image latents (9 channels)."""
    return int(getattr(pipe.unet.config, "in_channels", 4)) == 9


@torch.no_grad()
def run_inpaint(
    pipe: Any,
    job: InpaintJob,
    size: tuple[int, int],
    base_kwargs: dict[str, Any],
    strength: float,
    masked_content: str,
    callback: Callable[[Any, int, Any, dict[str, Any]], dict[str, Any]],
    seed: int,
    keep_outside: bool = True,
) -> Image.Image:
    """One inpainted image at canvas size (`keep_outside=False`: the raw drawing, before the final
    composite, for measuring how well the repaint itself keeps the known region). `pipe` is the model's pipeline with the request's scheduler."""
    width, height = size
    region = job.canvas.crop(job.region).resize(size, Image.Resampling.LANCZOS)
    hard = job.mask.crop(job.region).resize(size, Image.Resampling.NEAREST)
    soft = job.blurred.crop(job.region).resize(size, Image.Resampling.BILINEAR)
    if masked_content == "fill":
        region = fill_masked(region, hard)
    generator = torch.Generator("cpu").manual_seed(seed + 1)  # blend noise, apart from the sampler's
    kwargs = {**base_kwargs, "strength": strength}
    pixel = getattr(pipe, "latent_space", "latent") == "pixel"
    if not pixel and is_inpaint_unet(pipe):
        from diffusers import AutoPipelineForInpainting

        view = AutoPipelineForInpainting.from_pipe(pipe, scheduler=pipe.scheduler)
        view.set_progress_bar_config(disable=True)
        drawn = view(
            image=region,
            mask_image=soft,
            width=width,
            height=height,
            **kwargs,
            callback_on_step_end=callback,
            callback_on_step_end_tensor_inputs=["latents"],
        ).images[0]
        return composite(job.canvas, drawn, job) if keep_outside else drawn
    # 1. the known image in the model's sample space (VAE latents, or pixels for a pixel model)
    image = _to_tensor(region)
    if pixel:
        known = image
        view = pipe
        kwargs.update(height=height, width=width, upscale=1)
    else:
        from diffusers import AutoPipelineForImage2Image

        vae = pipe.vae
        known = vae.encode(image.to(vae.device, vae.dtype)).latent_dist.mean * vae.config.scaling_factor
        view = AutoPipelineForImage2Image.from_pipe(pipe, scheduler=pipe.scheduler)
        view.set_progress_bar_config(disable=True)
    # 2. the repaint mask at sample resolution: any cell the blurred mask touches is redrawn
    soft_t = torch.from_numpy(np.asarray(soft, dtype=np.float32) / 255.0)[None, None]
    mask = (F.interpolate(soft_t, size=known.shape[-2:], mode="area") > 1e-3).to(known.dtype)
    # 3. what the masked region starts from (A1111 "masked content")
    noise = torch.randn(known.shape, generator=generator, dtype=known.dtype)
    start = known
    if masked_content == "latent noise":
        start = known * (1 - mask) + noise * mask
    elif masked_content == "latent nothing":
        start = known * (1 - mask)
    blend = RepaintBlend(known, mask.to(known.device), noise.to(known.device))

    def step(step_pipe: Any, i: int, t: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
        callback_kwargs["latents"] = blend(step_pipe, t, callback_kwargs["latents"])
        return callback(step_pipe, i, t, callback_kwargs)

    drawn = view(
        image=start.to(known.device),
        **kwargs,
        callback_on_step_end=step,
        callback_on_step_end_tensor_inputs=["latents"],
    ).images[0]
    return composite(job.canvas, drawn, job) if keep_outside else drawn


def inpaint_settings(options: InpaintOptions) -> dict[str, Any]:
    settings: dict[str, Any] = {"Mask blur": options.mask_blur, "Masked content": options.masked_content}
    if options.only_masked:
        settings.update({"Inpaint area": "Only masked", "Masked area padding": options.only_masked_padding})
    if any(options.outpaint):
        settings["Outpaint"] = "left {} top {} right {} bottom {}".format(*options.outpaint)
    return settings
