"""Art Platform pipeline: text-to-image and img2img on any diffusers Stable Diffusion-style model.

`ArtPipeline.generate(request, cancel)` yields Started -> Step(preview)* -> Finished(ArtResult).
The diffusers loop runs in a worker thread (studio.worker); `callback_on_step_end` turns each
denoising step into a Step event with a cheap linear preview, and sets `pipe._interrupt` once the
cancel token is set, so a Stop takes effect within one step. Each finished image is saved at once
(PNG with an A1111 `parameters` chunk + a history row), so a cancelled batch keeps what it made.
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from pipelines.art.clip_guidance import ClipGuidance, check_clip, clip_score
from pipelines.art.hires import HiresOptions, check_hires, hires_settings, second_pass_steps
from pipelines.art.inpaint import (
    InpaintOptions,
    inpaint_settings,
    prepare_inpaint,
    processing_size,
)
from pipelines.art.latent_preview import LatentPreviewer, previewer_for
from pipelines.art.lora import LoraSpec, apply_loras, check_loras, lora_tags, prompt_loras, supports_lora
from pipelines.art.modes import mode_label, render_one
from pipelines.art.presets import apply_styles
from pipelines.art.vocabulary import Vocabulary
from pipelines.memory import apply_plan_to_diffusers, load_quantization_kwargs
from pipelines.metadata import GenerationParameters, save_png
from studio.device import DevicePlan
from studio.events import CancelToken, EtaClock, Event, Notice, Started, Step, UserError
from studio.inputs import MAX_SEED, clean_text, parse_seed
from studio.registry import ModelEntry, ModelRegistry, is_oom
from studio.store import OutputStore
from studio.worker import Emit, stream_events

log = logging.getLogger(__name__)

TASK = "art"
MAX_PROMPT_CHARS = 2000  # CLIP reads 77 tokens anyway; longer text is truncated with a notice
MAX_STEPS = 150  # A1111's slider maximum
MAX_BATCH = 16
UPSCALE_MODES = ("nearest", "lanczos", "bicubic", "bilinear")  # display upscaling of pixel-space models

# sampler name (A1111 wording) -> (diffusers scheduler class name, extra config)
SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "DDIM": ("DDIMScheduler", {}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "DPM++ 2M Karras": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Euler": ("EulerDiscreteScheduler", {}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "DDPM": ("DDPMScheduler", {}),
}


@dataclass(frozen=True)
class ArtRequest:
    prompt: str
    negative_prompt: str = ""
    model_id: str = ""  # registry id, hub id or local folder; "" = the embedded default
    sampler: str = "DDIM"
    steps: int = 25  # num_inference_steps
    guidance_scale: float = 7.0  # classifier-free guidance weight
    seed: int = -1  # -1 = random; the seed used is always reported
    width: int = 0  # 0 = the model's native size
    height: int = 0
    batch_count: int = 1  # images generated one after another, seeds seed, seed+1, ...
    init_image: Image.Image | None = field(default=None, repr=False)  # img2img when given
    strength: float = 0.6  # img2img: how much of the init image is re-noised
    eta: float = 0.0  # DDIM eta (0 = deterministic DDIM)
    preview_every: int = 1  # linear preview every N steps (0 = never)
    full_decode_every: int = 0  # real VAE-decoded preview every N steps (0 = never)
    upscale_mode: str = "nearest"  # pixel-space models: display upscale filter (nearest = pixel art)
    inpaint: InpaintOptions | None = field(default=None, repr=False)  # inpaint/outpaint init_image
    hires: HiresOptions | None = None  # text-to-image: a second, upscaled img2img pass
    loras: tuple[LoraSpec, ...] = ()  # LoRA files and weights (diffusers models); <lora:..> tags add to it
    clip: ClipGuidance | None = None  # CLIP model for a per-image score, and CLIP-guided DDIM if scale > 0
    styles: tuple[str, ...] = ()  # style presets (assets/presets/styles.json) applied to the prompts


@dataclass(frozen=True)
class ArtImage:
    image: Image.Image
    seed: int
    path: Path
    record_id: int
    parameters: str  # the A1111 infotext saved in the PNG


@dataclass(frozen=True)
class ArtResult:
    images: list[ArtImage]
    model: str
    sampler: str
    cancelled: bool = False


@dataclass(frozen=True)
class ArtModel:
    """What the registry holds for an art entry."""

    pipe: Any  # a diffusers pipeline with callback_on_step_end support
    previewer: LatentPreviewer
    native_size: int  # pixels
    applied: tuple[str, ...] = ()  # plan actions applied at load, for the UI
    label: str = ""
    vocabulary: Vocabulary | None = None  # what a small project-trained model knows (None: no list)


# -- loading -------------------------------------------------------------------------------------


def wrap_pipeline(pipe: Any, plan: DevicePlan, label: str) -> ArtModel:
    """Apply the device plan, fit/choose the previewer, work out the native size."""
    applied = apply_plan_to_diffusers(pipe, plan)
    scale = getattr(pipe, "vae_scale_factor", 1) if getattr(pipe, "vae", None) is not None else 1
    native = int(pipe.unet.config.sample_size) * int(scale)
    return ArtModel(pipe, previewer_for(pipe), native, tuple(applied), label)


def load_diffusers_art(entry: ModelEntry, plan: DevicePlan) -> ArtModel:
    """Hub id or local folder -> ArtModel, through the ordinary from_pretrained."""
    from diffusers import AutoPipelineForText2Image

    # on CUDA at LOW/MINIMAL: 8-bit bitsandbytes components when installed ({} on CPU)
    extra = load_quantization_kwargs(plan, "diffusers")
    pipe = AutoPipelineForText2Image.from_pretrained(entry.path, dtype=plan.dtype, **extra)
    if getattr(pipe, "safety_checker", None) is not None:
        pipe.safety_checker = None  # as in A1111/ComfyUI: no silent black images
    return wrap_pipeline(pipe, plan, entry.display)


def make_scheduler(sampler: str, base_config: Any) -> Any:
    import diffusers

    class_name, extra = SAMPLERS[sampler]
    return getattr(diffusers, class_name).from_config(base_config, **extra)


# -- validation ----------------------------------------------------------------------------------


def max_side_for(plan: DevicePlan) -> int:
    """Largest side we let a user ask for: 2048 on accelerators, 1024 on CPU (minutes per image)."""
    return 2048 if plan.is_accelerator else 1024


def validate(request: ArtRequest, native: int, max_side: int) -> tuple[ArtRequest, list[str]]:
    """Check every field; fix what can be fixed with a notice, refuse the rest with UserError."""
    notices: list[str] = []
    prompt = clean_text(request.prompt)
    if not prompt:
        raise UserError("The prompt is empty. Describe the image you want, e.g. 'a lighthouse at dusk'.")
    # style presets wrap the prompt and extend the negative (A1111's rule) before any truncation
    prompt, styled_negative = apply_styles(prompt, clean_text(request.negative_prompt), request.styles)
    if len(prompt) > MAX_PROMPT_CHARS:
        notices.append(
            f"The prompt was {len(prompt):,} characters; it was truncated to {MAX_PROMPT_CHARS:,}."
        )
        prompt = prompt[:MAX_PROMPT_CHARS]
    negative = styled_negative[:MAX_PROMPT_CHARS]
    if request.sampler not in SAMPLERS:
        raise UserError(f"Unknown sampler {request.sampler!r}. Choose one of: {', '.join(SAMPLERS)}.")
    if not 1 <= int(request.steps) <= MAX_STEPS:
        raise UserError(f"Steps must be between 1 and {MAX_STEPS} (got {request.steps}).")
    if not 0 <= float(request.guidance_scale) <= 30:
        raise UserError(f"CFG scale must be between 0 and 30 (got {request.guidance_scale}).")
    if not 1 <= int(request.batch_count) <= MAX_BATCH:
        raise UserError(f"Batch count must be between 1 and {MAX_BATCH} (got {request.batch_count}).")
    if request.upscale_mode not in UPSCALE_MODES:
        raise UserError(f"Upscale mode must be one of: {', '.join(UPSCALE_MODES)}.")
    if not 0.0 < float(request.strength) <= 1.0:
        raise UserError(f"Denoising strength must be in (0, 1] (got {request.strength}).")
    if request.inpaint is not None:
        notices += prepare_inpaint(request.init_image, request.inpaint).notices
    check_loras(request.loras)
    notices += check_clip(
        request.clip, request.init_image is not None or request.hires is not None, request.sampler
    )
    if request.hires is not None:
        if request.init_image is not None:
            raise UserError(
                "Hires fix applies to text-to-image; remove the init image or turn hires fix off."
            )
        check_hires(request.hires, int(request.steps))
    width, height = int(request.width) or native, int(request.height) or native
    for name, side in (("Width", width), ("Height", height)):
        if side % 8:
            raise UserError(
                f"{name} must be a multiple of 8 (got {side}); try {max(8, round(side / 8) * 8)}."
            )
        if not 8 <= side <= max_side:
            raise UserError(f"{name} must be between 8 and {max_side} px on this device (got {side:,}).")
    steps = int(request.steps)
    if request.init_image is not None and int(steps * float(request.strength)) < 1:
        # img2img runs int(steps × strength) steps (diffusers' rule): with none it would fail deep
        # inside the pipeline, so run the fewest steps that give one denoising step, and say so
        steps = math.ceil(1 / float(request.strength))
        if steps > MAX_STEPS:
            raise UserError(
                f"Denoising strength {request.strength} is too small to change anything even at "
                f"{MAX_STEPS} steps; use at least {math.ceil(100 / MAX_STEPS) / 100}."
            )
        notices.append(
            f"{request.steps} steps at denoising strength {request.strength} leave no denoising step; "
            f"ran {steps} steps (1 of them denoising) instead."
        )
    seed = parse_seed(request.seed)
    if seed == -1:
        seed = random.randint(0, MAX_SEED)
    cleaned = replace(
        request,
        prompt=prompt,
        negative_prompt=negative,
        steps=steps,
        batch_count=int(request.batch_count),
        width=width,
        height=height,
        seed=seed,
    )
    return cleaned, notices


# -- generation ----------------------------------------------------------------------------------


class ArtPipeline:
    def __init__(
        self,
        registry: ModelRegistry,
        store: OutputStore,
        default_model: str = "",
        lora_dir: Path | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.default_model = default_model  # used when a request names no model
        self.lora_dir = lora_dir  # where <lora:name:weight> prompt tags look for name.safetensors

    def generate(self, request: ArtRequest, cancel: CancelToken) -> Iterator[Event]:
        """Stream events for a whole batch; see the module docstring.

        Requests that are wrong whatever the model (empty prompt, 0 steps, a size not a multiple
        of 8, a bad seed) raise UserError here, before any model is loaded.
        """
        prompt, tagged = prompt_loras(request.prompt, self.lora_dir)
        request = replace(request, prompt=prompt, loras=(*request.loras, *tagged))
        validate(request, native=8, max_side=max_side_for(self.registry.plan))
        return stream_events(lambda emit: self._run(request, cancel, emit), cancel)

    def _run(self, request: ArtRequest, cancel: CancelToken, emit: Emit) -> ArtResult:
        # 1. load (or reuse) the model; a failed hub load falls back with a notice
        loaded = self.registry.load(request.model_id or self.default_model, TASK)
        if loaded.notice:
            emit(Notice(loaded.notice))
        model: ArtModel = loaded.model
        plan = self.registry.plan
        requested = (int(request.width), int(request.height))
        request, notices = validate(request, model.native_size, max_side_for(plan))
        job = prepare_inpaint(request.init_image, request.inpaint) if request.inpaint else None
        if _is_pixel_model(model.pipe):
            request, pixel_notice = _pixel_size(request, model)
            notices += [] if job else pixel_notice
        if job is not None:  # inpaint draws the canvas (or the crop) at its own size
            size = processing_size(job, model.native_size, requested, max_side_for(plan))
            if _is_pixel_model(model.pipe):
                size = (model.native_size, model.native_size)
            request = replace(request, width=size[0], height=size[1])
        if model.vocabulary is not None and (unknown := model.vocabulary.unknown_notice(request.prompt)):
            notices.append(unknown)  # the image is still drawn; the user learns what would work better
        if not supports_lora(model.pipe) and request.loras:
            notices.append(f"{loaded.entry.display} has no LoRA support; the LoRAs were ignored.")
            request = replace(request, loras=())
        elif supports_lora(model.pipe):
            apply_loras(model.pipe, request.loras)  # exactly this request's adapters, or none
        for message in notices:
            emit(Notice(message))
        # 2. a per-request view of the pipeline with the chosen sampler (weights are shared)
        pipe = _pipeline_view(model.pipe, request)
        steps_per_image = _effective_steps(request)
        total = steps_per_image * request.batch_count
        emit(Started(total, f"{mode_label(request)} · {request.sampler} · {loaded.entry.display}"))
        clock = EtaClock(total)
        images: list[ArtImage] = []
        for k in range(request.batch_count):
            if cancel.cancelled:
                break
            seed = (request.seed + k) % (MAX_SEED + 1)
            for attempt in range(2):  # an out-of-memory error reloads one tier lower and retries once

                def callback(offset: int = 0, start: int = k * steps_per_image, m: ArtModel = model) -> Any:
                    return _StepCallback(m, cancel, emit, clock, start + offset, total, request)

                # 3. the diffusers loop itself; the callback streams previews and honours Stop
                try:
                    kwargs = _call_kwargs(pipe, request, seed)
                    image = render_one(pipe, request, kwargs, seed, callback, job, max_side_for(plan))
                    break
                except Exception as error:  # noqa: BLE001 - only an OOM is retried
                    if attempt or not is_oom(error):
                        raise
                # outside the except block, so the failed call's tensors can be freed first
                loaded = self.registry.reload_lower(loaded.entry.id, TASK)
                emit(Notice(loaded.notice, "warning"))
                model = loaded.model
                if request.loras:  # the reloaded model starts without adapters
                    apply_loras(model.pipe, request.loras)
                pipe = _pipeline_view(model.pipe, request)
            if cancel.cancelled:
                break  # the interrupted image is half-denoised noise: don't save it
            score = clip_score([image], request.prompt, request.clip.clip_model)[0] if request.clip else None
            images.append(self._save(image, request, seed, loaded.entry, score))
        return ArtResult(images, loaded.entry.display, request.sampler, cancelled=cancel.cancelled)

    def _save(
        self,
        image: Image.Image,
        request: ArtRequest,
        seed: int,
        entry: ModelEntry,
        score: float | None = None,
    ) -> ArtImage:
        params = infotext(request, seed, entry.display, image.size)
        if score is not None:
            params.settings["CLIP score"] = f"{score:.2f}"  # 100 x cosine(image, prompt) under request.clip
        path = self.store.write(TASK, ".png", lambda tmp: save_png(image, tmp, params))
        record_params = asdict(replace(request, init_image=None, inpaint=None))
        record_params.pop("init_image")
        if request.inpaint is not None:
            record_params["inpaint"] = {
                k: v for k, v in asdict(replace(request.inpaint, mask=None)).items() if k != "mask"
            }
        record_params.update(
            seed=seed, model_id=entry.id, img2img=request.init_image is not None, clip_score=score
        )
        record = self.store.record(TASK, request.prompt[:200], record_params, [path])
        return ArtImage(image, seed, path, record.id, params.to_text())


def infotext(request: ArtRequest, seed: int, model: str, size: tuple[int, int]) -> GenerationParameters:
    settings: dict[str, Any] = {
        "Steps": request.steps,
        "Sampler": request.sampler,
        "CFG scale": request.guidance_scale,
        "Seed": seed,
        "Size": f"{size[0]}x{size[1]}",
        "Model": model,
    }
    if request.init_image is not None:
        settings["Denoising strength"] = request.strength
    if request.inpaint is not None:
        settings.update(inpaint_settings(request.inpaint))
    if request.hires is not None:
        settings.update(hires_settings(request.hires, request.steps))
    if request.clip is not None and request.clip.scale > 0:
        settings.update({"CLIP guidance scale": request.clip.scale, "CLIP model": request.clip.clip_model})
    if request.sampler == "DDIM" and request.eta:
        settings["Eta"] = request.eta
    if request.styles:
        settings["Styles"] = ", ".join(request.styles)
    if size[0] != request.width and request.inpaint is None and request.hires is None:
        settings["Upscale"] = f"{size[0] // max(request.width, 1)}x {request.upscale_mode}"
    settings["Version"] = "creative-studio"
    prompt = f"{request.prompt} {lora_tags(request.loras)}" if request.loras else request.prompt
    return GenerationParameters(prompt, request.negative_prompt, settings)


def _is_pixel_model(pipe: Any) -> bool:
    return getattr(pipe, "latent_space", "latent") == "pixel"


def _pixel_size(request: ArtRequest, model: ArtModel) -> tuple[ArtRequest, list[str]]:
    """A pixel-space model draws at its native size; the pipeline upscales it for display."""
    native = model.native_size
    if (request.width, request.height) == (native, native):
        return request, []
    factor = model.pipe.config.default_upscale
    message = (
        f"This model draws at {native}×{native} px and upscales ×{factor} for display; "
        f"the requested {request.width}×{request.height} was ignored."
    )
    return replace(request, width=native, height=native), [message]


def _effective_steps(request: ArtRequest) -> int:
    """img2img runs only the last `strength` fraction of the schedule, as diffusers does;
    hires fix adds its second pass."""
    if request.hires is not None:
        return request.steps + second_pass_steps(request.hires, request.steps)
    if request.init_image is None:
        return request.steps
    return max(1, min(int(request.steps * request.strength), request.steps))


def _accepts(pipe: Any, name: str) -> bool:
    return name in inspect.signature(pipe.__call__).parameters


def _pipeline_view(pipe: Any, request: ArtRequest) -> Any:
    """Same weights, fresh scheduler; an img2img pipeline when an init image is given."""
    scheduler = make_scheduler(request.sampler, pipe.scheduler.config)
    if request.init_image is not None and not _accepts(pipe, "image"):
        from diffusers import AutoPipelineForImage2Image

        view = AutoPipelineForImage2Image.from_pipe(pipe, scheduler=scheduler)
    else:
        # a shallow copy keeps whatever the pipeline caches beyond its components (a text encoder
        # loaded from a wheel, offload hooks); assigning the scheduler re-registers it on the copy only
        view = copy.copy(pipe)
        view.scheduler = scheduler
    view.set_progress_bar_config(disable=True)
    return view


def _call_kwargs(pipe: Any, request: ArtRequest, seed: int) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt or None,
        "num_inference_steps": request.steps,
        "guidance_scale": request.guidance_scale,
        "generator": torch.Generator("cpu").manual_seed(seed),  # CPU RNG: same image on any device
    }
    if request.sampler == "DDIM":
        kwargs["eta"] = request.eta
    if _accepts(pipe, "upscale_mode"):
        kwargs["upscale_mode"] = request.upscale_mode
    if request.init_image is not None:
        kwargs["image"] = request.init_image.resize((request.width, request.height), Image.LANCZOS)
        kwargs["strength"] = request.strength
    else:
        kwargs["width"], kwargs["height"] = request.width, request.height
    return kwargs


class _StepCallback:
    """diffusers `callback_on_step_end`: Stop check, preview, Step event. Must be cheap."""

    def __init__(
        self,
        model: ArtModel,
        cancel: CancelToken,
        emit: Emit,
        clock: EtaClock,
        offset: int,
        total: int,
        request: ArtRequest,
    ) -> None:
        self.model, self.cancel, self.emit, self.clock = model, cancel, emit, clock
        self.offset, self.total, self.request = offset, total, request

    def __call__(self, pipe: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.cancel.cancelled:
            pipe._interrupt = True  # diffusers skips every remaining step
        done = min(self.offset + i + 1, self.total)
        latents = kwargs["latents"]
        preview = None
        if self.request.full_decode_every and (i + 1) % self.request.full_decode_every == 0:
            preview = full_decode(pipe, latents)
        elif self.request.preview_every and (i + 1) % self.request.preview_every == 0:
            preview = self.model.previewer(latents)
        self.emit(Step(done, self.total, preview, self.clock.eta(done)))
        return kwargs


@torch.no_grad()
def full_decode(pipe: Any, latents: torch.Tensor) -> Image.Image:
    """A real VAE decode of the current latents (costly: use every k steps, or never)."""
    vae = getattr(pipe, "vae", None)
    if vae is None:  # pixel-space model: the sample is the image
        return LatentPreviewer.pixel()(latents)
    decoded = vae.decode(latents[:1].to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
    return pipe.image_processor.postprocess(decoded, output_type="pil")[0]
