"""How one image is drawn for each mode: text-to-image/img2img, inpaint/outpaint, or hires fix.

`request` is a validated `ArtRequest`; `kwargs` are its ordinary diffusers call arguments.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from pipelines.art.clip_guidance import clip_guided_sample, load_scorer
from pipelines.art.hires import run_hires
from pipelines.art.inpaint import InpaintJob, is_inpaint_unet, run_inpaint


def mode_label(request: Any) -> str:
    if request.inpaint is not None:
        return "outpaint" if any(request.inpaint.outpaint) else "inpaint"
    if request.hires is not None:
        return f"text-to-image + hires ×{request.hires.scale:g}"
    if request.clip is not None and request.clip.scale > 0:
        return "text-to-image + CLIP guidance"
    return "img2img" if request.init_image is not None else "text-to-image"


def render_one(
    pipe: Any,
    request: Any,
    kwargs: dict[str, Any],
    seed: int,
    callback: Any,
    job: InpaintJob | None,
    max_side: int,
) -> Image.Image:
    """One image: plain text-to-image/img2img, inpaint/outpaint, or the two hires passes."""
    if job is not None and request.inpaint is not None:
        base = {k: v for k, v in kwargs.items() if k not in {"image", "strength", "width", "height"}}
        size = (request.width, request.height)
        content = request.inpaint.masked_content
        return run_inpaint(pipe, job, size, base, request.strength, content, callback(), seed)
    if request.hires is None and getattr(pipe, "vae", None) is not None and is_inpaint_unet(pipe):
        # an inpainting checkpoint drawing text-to-image / img2img: everything is masked, as in A1111
        size = (request.width, request.height)
        canvas = (
            request.init_image.resize(size)
            if request.init_image is not None
            else Image.new("RGB", size, "gray")
        )
        full = Image.new("L", size, 255)
        job = InpaintJob(canvas, full, full, (0, 0, *size))
        strength = request.strength if request.init_image is not None else 1.0
        base = {k: v for k, v in kwargs.items() if k not in {"image", "strength", "width", "height"}}
        return run_inpaint(pipe, job, size, base, strength, "original", callback(), seed)
    if request.hires is not None:
        base = {k: v for k, v in kwargs.items() if k not in {"width", "height", "upscale_mode"}}
        callbacks = (callback(0), callback(request.steps))
        size = (request.width, request.height)
        return run_hires(pipe, request.hires, size, max_side, base, callbacks, request.upscale_mode)
    if request.clip is not None and request.clip.scale > 0:
        scorer = load_scorer(request.clip.clip_model)
        return clip_guided_sample(pipe, scorer, request.clip, kwargs, callback())
    output = pipe(**kwargs, callback_on_step_end=callback(), callback_on_step_end_tensor_inputs=["latents"])
    return output.images[0]
