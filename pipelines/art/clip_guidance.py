"""CLIP guidance and CLIP score for latent (Stable Diffusion-style) models.

Guided sampling follows diffusers' community `clip_guided_stable_diffusion`: at every DDIM step
the UNet's noise prediction is corrected by the gradient of a CLIP loss (spherical distance between
the CLIP embedding of the predicted clean image and the prompt's), taken with respect to the
current latents, so each step moves the sample towards what CLIP reads as the prompt.

`clip_score(images, prompt, clip_model)` is the usual CLIPScore: 100 × max(cos(image, text), 0).
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from studio.events import UserError

log = logging.getLogger(__name__)

CLIP_ENV = "STUDIO_CLIP_MODEL"  # the CLIP model used for scores when a caller names none
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ClipGuidance:
    clip_model: str  # hub id or local folder of a transformers CLIPModel with its tokenizer
    scale: float = 100.0  # clip_guidance_scale: weight of the CLIP loss gradient (0 = score only)


class ClipScorer:
    """A CLIPModel with its tokenizer and pixel normalisation, differentiable on the image side."""

    def __init__(self, source: str) -> None:
        from transformers import AutoTokenizer, CLIPModel

        try:
            self.model = CLIPModel.from_pretrained(source).eval().requires_grad_(False)
            self.tokenizer = AutoTokenizer.from_pretrained(source)
        except (OSError, ValueError) as error:
            raise UserError(f"The CLIP model '{source}' could not be loaded ({str(error)[:200]}).") from None
        self.size = int(self.model.config.vision_config.image_size)
        mean, std = OPENAI_MEAN, OPENAI_STD
        config = Path(source) / "preprocessor_config.json"
        if config.is_file():
            values = json.loads(config.read_text())
            mean, std = values.get("image_mean", mean), values.get("image_std", std)
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)

    def text_embeds(self, prompt: str) -> torch.Tensor:
        tokens = self.tokenizer(
            [prompt], padding="max_length", truncation=True, max_length=self.tokenizer.model_max_length,
            return_tensors="pt",
        )  # fmt: skip
        with torch.no_grad():
            embeds = _features(self.model.get_text_features(input_ids=tokens.input_ids))
        return F.normalize(embeds, dim=-1)  # [1, D]

    def image_embeds(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 3, H, W] in [0, 1] -> normalised embeddings [B, D] (keeps the autograd graph)."""
        pixels = F.interpolate(images, size=(self.size, self.size), mode="bicubic", align_corners=False)
        pixels = (pixels - self.mean.to(pixels)) / self.std.to(pixels)
        embeds = _features(self.model.get_image_features(pixel_values=pixels.to(self.model.dtype)))
        return F.normalize(embeds.float(), dim=-1)


def _features(output: Any) -> torch.Tensor:
    """transformers 5 may return a model output object rather than the projected tensor."""
    if isinstance(output, torch.Tensor):
        return output
    return output.pooler_output if getattr(output, "pooler_output", None) is not None else output[0]


@functools.lru_cache(maxsize=2)
def load_scorer(source: str) -> ClipScorer:
    return ClipScorer(source)


def clip_score(images: list[Image.Image], prompt: str, clip_model: str | None = None) -> list[float]:
    """CLIPScore per image, 100 × max(cosine, 0); `clip_model` defaults to $STUDIO_CLIP_MODEL."""
    source = clip_model or os.environ.get(CLIP_ENV, "")
    if not source:
        raise UserError(f"No CLIP model is configured: name one (hub id or folder) or set {CLIP_ENV}.")
    scorer = load_scorer(source)
    batch = torch.stack([torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
                         for im in _same_size(images)])  # fmt: skip
    with torch.no_grad():
        cosine = (scorer.image_embeds(batch) @ scorer.text_embeds(prompt).T).squeeze(-1)
    return [round(100.0 * max(float(c), 0.0), 4) for c in cosine]


def _same_size(images: list[Image.Image]) -> list[Image.Image]:
    size = images[0].size
    return [im if im.size == size else im.resize(size, Image.Resampling.BICUBIC) for im in images]


def spherical_dist_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    return (x - y).norm(dim=-1).div(2).arcsin().pow(2).mul(2)


def check_clip(guidance: ClipGuidance | None, img2img_or_hires: bool, sampler: str) -> list[str]:
    """Request-level checks; returns notices."""
    if guidance is None:
        return []
    if not guidance.clip_model.strip():
        raise UserError(
            "CLIP guidance needs a CLIP model: a hub id such as openai/clip-vit-base-patch32 or a folder."
        )
    if not 0 <= float(guidance.scale) <= 100_000:
        raise UserError(f"CLIP guidance scale must be between 0 and 100000 (got {guidance.scale}).")
    if guidance.scale > 0 and img2img_or_hires:
        raise UserError("CLIP-guided sampling applies to plain text-to-image (no init image, no hires fix).")
    if guidance.scale > 0 and sampler != "DDIM":
        return [f"CLIP-guided sampling uses DDIM (the {sampler} sampler was not used)."]
    return []


def check_clip_pipe(pipe: Any) -> None:
    """CLIP guidance needs a latent SD-style pipeline with an epsilon-predicting UNet."""
    if getattr(pipe, "vae", None) is None or not hasattr(pipe, "encode_prompt"):
        raise UserError(
            "CLIP guidance needs a latent Stable Diffusion model (hub or local); this model is not one."
        )
    if pipe.scheduler.config.get("prediction_type", "epsilon") != "epsilon":
        raise UserError("CLIP guidance supports epsilon-prediction models (SD 1.x / 2.x base, SD-Turbo).")


def clip_guided_sample(
    pipe: Any,
    scorer: ClipScorer,
    guidance: ClipGuidance,
    kwargs: dict[str, Any],
    callback: Callable[[Any, int, Any, dict[str, Any]], dict[str, Any]],
) -> Image.Image:
    """Text-to-image with DDIM where CLIP steers every step. `kwargs`: the ordinary call arguments."""
    from diffusers import DDIMScheduler
    from diffusers.utils.torch_utils import randn_tensor

    check_clip_pipe(pipe)
    unet, vae, device = pipe.unet, pipe.vae, pipe._execution_device
    cfg = float(kwargs["guidance_scale"])
    # 1. text conditioning, [uncond; cond] when classifier-free guidance is on
    cond, uncond = pipe.encode_prompt(kwargs["prompt"], device, 1, cfg > 1.0, kwargs.get("negative_prompt"))
    embeds = torch.cat([uncond, cond]) if cfg > 1.0 else cond
    target = scorer.text_embeds(kwargs["prompt"])
    # 2. DDIM schedule and the starting noise (drawn exactly as StableDiffusionPipeline does)
    scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(int(kwargs["num_inference_steps"]), device=device)
    scale = pipe.vae_scale_factor
    shape = (1, unet.config.in_channels, kwargs["height"] // scale, kwargs["width"] // scale)
    latents = randn_tensor(shape, generator=kwargs["generator"], device=device, dtype=unet.dtype)
    latents = latents * scheduler.init_noise_sigma
    pipe._interrupt = False
    for i, t in enumerate(scheduler.timesteps):
        if pipe._interrupt:
            break
        # 3. the ordinary guided noise prediction
        with torch.no_grad():
            model_in = torch.cat([latents] * 2) if cfg > 1.0 else latents
            noise = unet(scheduler.scale_model_input(model_in, t), t, encoder_hidden_states=embeds).sample
            if cfg > 1.0:
                noise_uncond, noise_text = noise.chunk(2)
                noise = noise_uncond + cfg * (noise_text - noise_uncond)
        # 4. CLIP's correction: -sqrt(1 - alpha_bar) * grad of the CLIP loss on the predicted x0
        if guidance.scale > 0:
            noise = _clip_step(pipe, scheduler, scorer, target, cond, latents, t, noise, guidance.scale)
        # 5. x_t -> x_t-1
        latents = scheduler.step(noise, t, latents, eta=float(kwargs.get("eta", 0.0))).prev_sample
        latents = callback(pipe, i, t, {"latents": latents}).get("latents", latents)
    with torch.no_grad():
        decoded = vae.decode(latents / vae.config.scaling_factor).sample
    return pipe.image_processor.postprocess(decoded, output_type="pil")[0]


def _clip_step(
    pipe: Any,
    scheduler: Any,
    scorer: ClipScorer,
    target: torch.Tensor,
    cond: torch.Tensor,
    latents: torch.Tensor,
    t: Any,
    noise: torch.Tensor,
    clip_scale: float,
) -> torch.Tensor:
    with torch.enable_grad():
        x = latents.detach().requires_grad_()
        eps = pipe.unet(scheduler.scale_model_input(x, t), t, encoder_hidden_states=cond).sample
        alpha = scheduler.alphas_cumprod[int(t)].to(x)
        beta = 1 - alpha
        x0 = (x - beta.sqrt() * eps) / alpha.sqrt()  # predicted clean latents
        fac = beta.sqrt()
        sample = x0 * fac + x * (1 - fac)  # the community pipeline's blend, steadier early on
        image = pipe.vae.decode(sample / pipe.vae.config.scaling_factor).sample
        image = (image / 2 + 0.5).clamp(0, 1)
        loss = spherical_dist_loss(scorer.image_embeds(image), target).mean() * clip_scale
        grads = -torch.autograd.grad(loss, x)[0]
    return noise - beta.sqrt() * grads
