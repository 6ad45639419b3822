"""Hires fix (A1111's two-pass generation): draw small, upscale, then img2img at a chosen strength.

- Latent models: the first pass returns latents; "latent" upscales them bilinearly in latent space
  (A1111's "Latent" upscaler), "lanczos" decodes, resizes with PIL's Lanczos filter and re-encodes.
- The pixel-space offline model: its 32 px sample is enlarged (Lanczos, or bicubic for "latent",
  which is pixel space here) and redrawn at the bigger size, so the final picture has real detail
  instead of only a nearest-neighbour blow-up; what is left of the display upscale is applied last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from studio.events import UserError

HIRES_UPSCALERS = ("latent", "lanczos")
MAX_SCALE = 4.0

StepCallback = Callable[[Any, int, Any, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class HiresOptions:
    scale: float = 2.0  # size multiplier of the second pass
    upscaler: str = "latent"  # "latent" (interpolate the sample) or "lanczos" (PIL Lanczos on the image)
    steps: int = 0  # second-pass steps before strength is applied; 0 = the first pass's steps
    denoising_strength: float = 0.5  # how much of the upscaled image is redrawn


def check_hires(options: HiresOptions, steps: int) -> None:
    if options.upscaler not in HIRES_UPSCALERS:
        raise UserError(f"Hires upscaler must be one of: {', '.join(HIRES_UPSCALERS)}.")
    if not 1.0 < float(options.scale) <= MAX_SCALE:
        raise UserError(f"Hires scale must be above 1 and at most {MAX_SCALE:g} (got {options.scale}).")
    if not 0.0 < float(options.denoising_strength) <= 1.0:
        raise UserError(f"Hires denoising strength must be in (0, 1] (got {options.denoising_strength}).")
    if not 0 <= int(options.steps) <= 150:
        raise UserError(f"Hires steps must be between 0 and 150 (got {options.steps}).")
    if int((int(options.steps) or steps) * float(options.denoising_strength)) < 1:
        raise UserError(
            "Hires steps × denoising strength is below one step; raise the hires steps or the strength."
        )


def second_pass_steps(options: HiresOptions, steps: int) -> int:
    """Steps the second pass really runs: the last `strength` part of its schedule, as img2img does."""
    total = int(options.steps) or steps
    return max(1, min(int(total * options.denoising_strength), total))


def target_size(options: HiresOptions, width: int, height: int, multiple: int) -> tuple[int, int]:
    def side(value: int) -> int:
        return max(multiple, round(value * options.scale / multiple) * multiple)

    return side(width), side(height)


@torch.no_grad()
def run_hires(
    pipe: Any,
    options: HiresOptions,
    size: tuple[int, int],
    max_side: int,
    base_kwargs: dict[str, Any],
    callbacks: tuple[StepCallback, StepCallback],
    upscale_mode: str = "nearest",
) -> Image.Image:
    """Both passes for one image; `callbacks` stream the first and the second pass's steps."""
    width, height = size
    pixel = getattr(pipe, "latent_space", "latent") == "pixel"
    multiple = 2 ** (len(pipe.unet.config.block_out_channels) - 1) if pixel else 8
    target = target_size(options, width, height, multiple)
    if max(target) > max_side:
        raise UserError(
            f"Hires fix would draw {target[0]}×{target[1]} px, over this device's {max_side} px limit; "
            "lower the scale or the size."
        )
    second = {
        **base_kwargs,
        "num_inference_steps": int(options.steps) or base_kwargs["num_inference_steps"],
        "strength": float(options.denoising_strength),
    }
    tensor_inputs = {"callback_on_step_end_tensor_inputs": ["latents"]}
    if pixel:
        # 1. first pass at the native size, kept as a [1, 3, h, w] tensor in [0, 1]
        small = pipe(
            **base_kwargs,
            width=width,
            height=height,
            upscale=1,
            output_type="pt",
            callback_on_step_end=callbacks[0],
            **tensor_inputs,
        ).images
        if pipe.interrupt:  # stopped during the first pass: no second pass
            return _to_pil(small[0])
        # 2. upscale in pixel space
        if options.upscaler == "lanczos":
            init: Any = _to_pil(small[0]).resize(target, Image.Resampling.LANCZOS)
        else:
            init = F.interpolate(small * 2 - 1, size=target[::-1], mode="bicubic").clamp(-1, 1)
        # 3. redraw at the bigger size; the display upscale shrinks by the hires scale
        display = max(1, round(pipe.config.default_upscale / options.scale))
        return pipe(
            **second,
            image=init,
            width=target[0],
            height=target[1],
            upscale=display,
            upscale_mode=upscale_mode,
            callback_on_step_end=callbacks[1],
            **tensor_inputs,
        ).images[0]
    from diffusers import AutoPipelineForImage2Image

    # 1. first pass: latents at the requested size
    latents = pipe(
        **base_kwargs,
        width=width,
        height=height,
        output_type="latent",
        callback_on_step_end=callbacks[0],
        **tensor_inputs,
    ).images
    if pipe.interrupt:  # stopped during the first pass: no second pass
        return _decode(pipe, latents)
    # 2. upscale: in latent space, or decode -> Lanczos -> (re-encoded by img2img)
    if options.upscaler == "latent":
        scale = pipe.vae_scale_factor
        init = F.interpolate(latents, size=(target[1] // scale, target[0] // scale), mode="bilinear")
    else:
        init = _decode(pipe, latents).resize(target, Image.Resampling.LANCZOS)
    # 3. second pass: img2img on the same weights
    view = AutoPipelineForImage2Image.from_pipe(pipe, scheduler=pipe.scheduler)
    view.set_progress_bar_config(disable=True)
    return view(**second, image=init, callback_on_step_end=callbacks[1], **tensor_inputs).images[0]


def _to_pil(sample: torch.Tensor) -> Image.Image:
    """[3, H, W] in [0, 1] -> PIL."""
    return Image.fromarray((sample.permute(1, 2, 0).float().cpu().numpy() * 255).round().astype(np.uint8))


def _decode(pipe: Any, latents: torch.Tensor) -> Image.Image:
    vae = pipe.vae
    decoded = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
    return pipe.image_processor.postprocess(decoded, output_type="pil")[0]


def hires_settings(options: HiresOptions, steps: int) -> dict[str, Any]:
    return {
        "Hires upscale": options.scale,
        "Hires steps": int(options.steps) or steps,
        "Hires upscaler": options.upscaler,
        "Denoising strength": options.denoising_strength,
    }
