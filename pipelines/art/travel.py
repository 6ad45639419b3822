"""Frame-by-frame rendering for prompt travel: one Art image from given noise and text embeddings.

A prompt-travel animation (pipelines.video) interpolates the starting noise and the text
embeddings between keyframes, then renders every frame as a normal Art image. To make the end
frames equal single Art images with the same seed and prompt, everything else is shared with
`ArtPipeline`: the request validation, the per-request pipeline view with its own scheduler, the
call arguments and the step callback (preview + Stop). Only two inputs change:

- `latents`: the starting noise, drawn here exactly as the diffusers pipeline would draw it for
  the seed (`randn_tensor` with a CPU generator), so a keyframe's noise is the seed's noise;
- the text conditioning: `prompt_embeds` / `negative_prompt_embeds` on Stable Diffusion-style
  pipelines; on the pixel-space model (which has no such argument) a per-call view whose
  `encode_prompt` returns the given embeddings.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from pipelines.art.pipeline import (
    MAX_PROMPT_CHARS,
    TASK,
    ArtModel,
    ArtRequest,
    _call_kwargs,
    _is_pixel_model,
    _pipeline_view,
    _pixel_size,
    _StepCallback,
    infotext,
    max_side_for,
    validate,
)
from studio.events import CancelToken, EtaClock, Notice
from studio.inputs import clean_text
from studio.registry import ModelEntry, ModelRegistry
from studio.worker import Emit


@dataclass(frozen=True)
class TextEmbedding:
    """Conditioning of one prompt: `cond` [1, L, D] (and the shared negative is kept by the session)."""

    prompt: str
    cond: torch.Tensor


class TravelSession:
    """One loaded Art model set up for one animation (sampler, steps, CFG, size fixed)."""

    def __init__(self, request: ArtRequest, model: ArtModel, entry: ModelEntry) -> None:
        self.request = request  # validated: seed, size and prompt are final
        self.model = model
        self.entry = entry
        self.pipe = model.pipe
        self.is_pixel = _is_pixel_model(self.pipe)
        self._accepts_embeds = "prompt_embeds" in inspect.signature(self.pipe.__call__).parameters
        self.negative = self._encode(request.negative_prompt or "")  # the unconditional branch

    @property
    def label(self) -> str:
        return self.entry.display

    def embed(self, prompt: str) -> TextEmbedding:
        """Prompt -> its conditioning tokens, the same the pipeline computes for a plain call."""
        text = clean_text(prompt)[:MAX_PROMPT_CHARS]  # as ArtPipeline's validation cleans it
        return TextEmbedding(text, self._encode(text, negative=False))

    def _encode(self, text: str, negative: bool = True) -> torch.Tensor:
        pipe = self.pipe
        kwargs: dict[str, Any] = {"num_images_per_prompt": 1, "do_classifier_free_guidance": True}
        if "device" in inspect.signature(pipe.encode_prompt).parameters:
            kwargs["device"] = pipe._execution_device
        if negative:
            # the negative branch: the pipeline encodes "" (pixel) or the negative prompt / "" (SD)
            kwargs["negative_prompt"] = text or None
            return pipe.encode_prompt(prompt="", **kwargs)[1]
        return pipe.encode_prompt(prompt=text, **{**kwargs, "do_classifier_free_guidance": False})[0]

    def noise(self, seed: int) -> torch.Tensor:
        """The starting noise the pipeline draws for `seed` (before init_noise_sigma scaling)."""
        pipe, request = self.pipe, self.request
        channels = int(pipe.unet.config.in_channels)
        if self.is_pixel:
            shape = (1, channels, request.height, request.width)
        else:
            scale = int(pipe.vae_scale_factor)
            shape = (1, channels, request.height // scale, request.width // scale)
        generator = torch.Generator("cpu").manual_seed(int(seed))  # CPU RNG, as ArtPipeline
        return randn_tensor(shape, generator=generator, device=pipe._execution_device, dtype=pipe.unet.dtype)

    def render(
        self,
        noise: torch.Tensor,
        embedding: torch.Tensor,
        cancel: CancelToken,
        emit: Emit,
        clock: EtaClock,
        offset: int,
        total: int,
    ) -> Image.Image | None:
        """Denoise one frame; Steps offset..offset+steps of `total` are emitted. None when stopped."""
        request = self.request
        view = _pipeline_view(self.pipe, request)
        kwargs = _call_kwargs(view, request, request.seed)
        kwargs["latents"] = noise
        if self._accepts_embeds:
            kwargs.update(prompt=None, negative_prompt=None)
            kwargs.update(prompt_embeds=embedding, negative_prompt_embeds=self.negative)
        else:
            # a per-call view whose encoder answers with the interpolated embeddings
            view.encode_prompt = _fixed_encoder(embedding, self.negative)
            kwargs["prompt"] = ""
            kwargs.pop("negative_prompt", None)
        callback = _StepCallback(self.model, cancel, emit, clock, offset, total, request)
        output = view(**kwargs, callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["latents"])
        if cancel.cancelled:
            return None
        return output.images[0]

    def parameters(self, prompt: str, seed: int, size: tuple[int, int]) -> str:
        """The A1111 infotext a single Art image with this prompt and seed would carry."""
        return infotext(replace(self.request, prompt=prompt), seed, self.label, size).to_text()


class PromptTravel:
    """Opens TravelSessions on registry Art models (the same entries the Art tab offers)."""

    def __init__(self, registry: ModelRegistry, default_model: str = "") -> None:
        self.registry = registry
        self.default_model = default_model

    def check(self, request: ArtRequest) -> None:
        """UserError for a request that is wrong whatever the model (before anything loads)."""
        validate(request, native=8, max_side=max_side_for(self.registry.plan))

    def open(self, request: ArtRequest, emit: Emit) -> TravelSession:
        """Load (or reuse) the model and settle the request exactly as ArtPipeline would."""
        loaded = self.registry.load(request.model_id or self.default_model, TASK)
        if loaded.notice:
            emit(Notice(loaded.notice))
        model: ArtModel = loaded.model
        request, notices = validate(request, model.native_size, max_side_for(self.registry.plan))
        if _is_pixel_model(model.pipe):
            request, pixel_notices = _pixel_size(request, model)
            notices += pixel_notices
        for message in notices:
            emit(Notice(message))
        return TravelSession(replace(request, batch_count=1), model, loaded.entry)


def _fixed_encoder(cond: torch.Tensor, negative: torch.Tensor) -> Callable[..., tuple[torch.Tensor, Any]]:
    def encode_prompt(
        prompt: Any = None,
        num_images_per_prompt: int = 1,
        do_classifier_free_guidance: bool = True,
        negative_prompt: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return cond, (negative if do_classifier_free_guidance else None)

    return encode_prompt
