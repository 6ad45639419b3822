"""Hub text-to-video: a diffusers AnimateDiff or text-to-video-ms pipeline, streamed like the Art tab.

- AnimateDiffPipeline (an SD 1.5 model + a motion adapter): `callback_on_step_end` streams a Step per
  denoising step with a cheap linear preview of the middle frame, and Stop sets `pipe._interrupt`.
- TextToVideoSDPipeline (damo-vilab text-to-video-ms, a UNet3DConditionModel): diffusers only offers
  the older `callback(step, t, latents)` there and no `_interrupt`, so Stop raises `Cancelled` from
  inside that callback, which ends the loop at the same step.

Either way the frames (uint8) go through pipelines.video.io's H.264 writer into the OutputStore
(task "video") and a History row with the parameters. Nothing is saved for a stopped run: an
interrupted video is half-denoised noise.
"""

from __future__ import annotations

import inspect
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from pipelines.art import LatentPreviewer, previewer_for
from pipelines.video.io import write_mp4
from studio.events import Cancelled, CancelToken, EtaClock, Event, Notice, Started, Step, UserError
from studio.inputs import MAX_SEED, clean_text, parse_seed
from studio.registry import ModelRegistry
from studio.store import OutputStore
from studio.worker import Emit, stream_events

log = logging.getLogger(__name__)

T2V_TASK = "text-to-video"  # registry task
STORE_TASK = "video"  # output folder and History task (shared with stylize and animate)
MAX_PROMPT_CHARS = 1000
MAX_T2V_FRAMES = 32  # AnimateDiff adapters are trained on 16-frame windows; 32 keeps CPU runs sane
MAX_T2V_STEPS = 100
MAX_T2V_SIDE = 768


@dataclass(frozen=True)
class TextToVideoRequest:
    prompt: str
    negative_prompt: str = ""
    model_id: str = ""  # registry id or hub id; "" = the task default
    frames: int = 16  # num_frames
    fps: float = 8.0
    steps: int = 25  # num_inference_steps
    guidance_scale: float = 7.5
    seed: int = -1  # -1 = random; the seed used is reported
    width: int = 0  # 0 = the model's native size
    height: int = 0
    preview_every: int = 1  # a linear preview every N steps (0 = never)


@dataclass(frozen=True)
class TextToVideoModel:
    """What the registry holds for a text-to-video entry."""

    pipe: Any  # AnimateDiffPipeline or TextToVideoSDPipeline
    previewer: LatentPreviewer
    native_size: int  # pixels
    label: str = ""


@dataclass(frozen=True)
class TextToVideoResult:
    path: Path | None  # the saved MP4 (None when stopped)
    record_id: int | None
    frames: int
    fps: float
    size: tuple[int, int]
    seed: int
    model: str
    seconds: float
    last_frame: Image.Image | None = None
    params: dict[str, Any] = field(default_factory=dict)
    cancelled: bool = False


def wrap_video_pipeline(pipe: Any, label: str) -> TextToVideoModel:
    pipe.set_progress_bar_config(disable=True)
    native = int(pipe.unet.config.sample_size) * int(getattr(pipe, "vae_scale_factor", 8))
    return TextToVideoModel(pipe, previewer_for(pipe), native, label)


def validate(request: TextToVideoRequest, native: int = 8) -> TextToVideoRequest:
    """UserError for what is wrong whatever the model; the seed is drawn here when random."""
    prompt = clean_text(request.prompt)
    if not prompt:
        raise UserError("The prompt is empty. Describe the clip, e.g. 'a paper boat drifting on a pond'.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise UserError(f"The prompt is {len(prompt):,} characters; keep it under {MAX_PROMPT_CHARS:,}.")
    if not 2 <= int(request.frames) <= MAX_T2V_FRAMES:
        raise UserError(f"Frames must be between 2 and {MAX_T2V_FRAMES} (got {request.frames}).")
    if not 1 <= float(request.fps) <= 30:
        raise UserError(f"FPS must be between 1 and 30 (got {request.fps}).")
    if not 1 <= int(request.steps) <= MAX_T2V_STEPS:
        raise UserError(f"Steps must be between 1 and {MAX_T2V_STEPS} (got {request.steps}).")
    if not 0 <= float(request.guidance_scale) <= 30:
        raise UserError(f"CFG scale must be between 0 and 30 (got {request.guidance_scale}).")
    width, height = int(request.width) or native, int(request.height) or native
    for name, side in (("Width", width), ("Height", height)):
        if side % 8 or not 8 <= side <= MAX_T2V_SIDE:
            raise UserError(f"{name} must be a multiple of 8 between 8 and {MAX_T2V_SIDE} px (got {side}).")
    seed = parse_seed(request.seed)
    return replace(
        request,
        prompt=prompt,
        negative_prompt=clean_text(request.negative_prompt)[:MAX_PROMPT_CHARS],
        frames=int(request.frames),
        steps=int(request.steps),
        width=width,
        height=height,
        seed=random.randint(0, MAX_SEED) if seed == -1 else seed,
    )


def generate_video(
    request: TextToVideoRequest, registry: ModelRegistry, store: OutputStore, cancel: CancelToken
) -> Iterator[Event]:
    """Started -> Step(preview of the middle frame)* -> Finished(TextToVideoResult)."""
    validate(request)
    return stream_events(lambda emit: _run(request, registry, store, cancel, emit), cancel)


def _run(
    request: TextToVideoRequest, registry: ModelRegistry, store: OutputStore, cancel: CancelToken, emit: Emit
) -> TextToVideoResult:
    started = time.perf_counter()
    # 1. load (or reuse) the model; a failed hub load falls back to the task default with a notice
    loaded = registry.load(request.model_id or registry.default_id(T2V_TASK), T2V_TASK)
    if loaded.notice:
        emit(Notice(loaded.notice))
    model: TextToVideoModel = loaded.model
    request = validate(request, model.native_size)
    pipe = model.pipe
    total = request.steps
    emit(Started(total, f"text-to-video · {request.frames} frames · {loaded.entry.display}"))
    clock = EtaClock(total)

    def step(i: int, latents: torch.Tensor) -> None:
        preview = None
        if request.preview_every and (i + 1) % request.preview_every == 0:
            middle = latents[:, :, latents.shape[2] // 2]  # [B, C, F, h, w] -> the middle frame
            preview = model.previewer(middle)
        emit(Step(i + 1, total, preview, clock.eta(i + 1)))

    kwargs: dict[str, Any] = {
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt or None,
        "num_frames": request.frames,
        "num_inference_steps": request.steps,
        "guidance_scale": float(request.guidance_scale),
        "width": request.width,
        "height": request.height,
        "generator": torch.Generator("cpu").manual_seed(request.seed),
        "output_type": "np",
    }
    # 2. the diffusers loop: a new-style callback (AnimateDiff) or the legacy one (text-to-video-ms)
    if "callback_on_step_end" in inspect.signature(pipe.__call__).parameters:

        def on_step_end(p: Any, i: int, t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            if cancel.cancelled:
                p._interrupt = True  # diffusers skips every remaining step
            step(i, tensors["latents"])
            return tensors

        output = pipe(
            **kwargs, callback_on_step_end=on_step_end, callback_on_step_end_tensor_inputs=["latents"]
        )
    else:

        def on_step(i: int, t: Any, latents: torch.Tensor) -> None:
            cancel.raise_if_cancelled()  # no _interrupt in this pipeline: leave the loop here
            step(i, latents)

        try:
            output = pipe(**kwargs, callback=on_step, callback_steps=1)
        except Cancelled:
            output = None
    seconds = time.perf_counter() - started
    if cancel.cancelled or output is None:
        emit(Notice("Stopped; an unfinished video is noise, so nothing was saved.", "info"))
        return TextToVideoResult(
            None, None, 0, request.fps, (0, 0), request.seed, loaded.entry.display, seconds, cancelled=True
        )
    # 3. frames [F, H, W, 3] floats in [0, 1] -> uint8 -> MP4 in the store, then the History row
    video = np.asarray(output.frames[0])
    frames = [(np.clip(f, 0, 1) * 255 + 0.5).astype(np.uint8) for f in video]
    path = store.write(STORE_TASK, ".mp4", lambda tmp: write_mp4(frames, tmp, float(request.fps)))
    height, width = frames[0].shape[:2]
    params = asdict(request) | {
        "kind": "text-to-video",
        "model": loaded.entry.display,
        "model_id": loaded.entry.id,
        "size": [width, height],
        "seconds": round(seconds, 2),
    }
    record = store.record(STORE_TASK, request.prompt[:200], params, [path])
    return TextToVideoResult(
        path,
        record.id,
        len(frames),
        float(request.fps),
        (width, height),
        request.seed,
        loaded.entry.display,
        seconds,
        Image.fromarray(frames[-1]),
        params,
    )
