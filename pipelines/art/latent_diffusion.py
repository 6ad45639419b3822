"""The offline art model v2: a small latent diffusion pipeline (VAE + text-conditioned UNet).

Trained by this project (training/art_latent/) on emoji art in several styles at 64 px: a tiny
`AutoencoderKL` (4x down-sampling, 4 latent channels) and a `UNet2DConditionModel` on its
16x16 latents, conditioned on all-MiniLM-L6-v2 token states exactly like v1's pixel model
(`PixelDiffusionPipeline`), whose prompt encoding, guidance, callbacks, img2img and display
upscale this pipeline reuses. The differences: samples are latents (`latent_space = "latent"`,
so live previews use a linear map fitted from the VAE), `height`/`width` are in pixels and
divided by `vae_scale_factor`, and the result is decoded by the VAE.
"""

from __future__ import annotations

from typing import Any

import PIL.Image
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.schedulers import KarrasDiffusionSchedulers

from pipelines.art.pixel_diffusion import (
    MINILM_WHEEL_MODULE,
    PixelDiffusionPipeline,
    PixelDiffusionPipelineOutput,
)

LATENT_TEXT_MAX_LENGTH = 28  # tokens per caption the v2 UNet was trained with


class LatentArtPipeline(PixelDiffusionPipeline):
    r"""Text-to-image (and image-to-image) with a small VAE + UNet in latent space.

    Args:
        vae ([`AutoencoderKL`]): encodes 64 px RGB to latents and decodes them back; its
            `scaling_factor` maps latents to unit variance.
        unet, scheduler, text_encoder_module, text_max_length, default_guidance_scale: as in
            [`PixelDiffusionPipeline`].
        default_upscale (`int`): display upscale of the decoded image (1: native 64 px).
        model_version (`str`): version of the trained weights, shown by the registry entry.
    """

    model_cpu_offload_seq = "unet->vae"
    latent_space = "latent"

    def __init__(
        self,
        vae: AutoencoderKL,
        unet: UNet2DConditionModel,
        scheduler: KarrasDiffusionSchedulers,
        text_encoder_module: str = MINILM_WHEEL_MODULE,
        text_max_length: int = LATENT_TEXT_MAX_LENGTH,
        default_upscale: int = 1,
        default_guidance_scale: float = 3.0,
        model_version: str = "2.0",
    ) -> None:
        super().__init__(
            unet=unet,
            scheduler=scheduler,
            text_encoder_module=text_encoder_module,
            text_max_length=text_max_length,
            default_upscale=default_upscale,
            default_guidance_scale=default_guidance_scale,
        )
        self.register_modules(vae=vae)
        self.register_to_config(model_version=model_version)

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def native_size(self) -> int:
        return int(self.unet.config.sample_size) * self.vae_scale_factor

    def preprocess_image(
        self, image: PIL.Image.Image | torch.Tensor, height: int, width: int
    ) -> torch.Tensor:
        """Image -> scaled VAE latents [1, C, height, width] (height/width in latent units)."""
        if isinstance(image, torch.Tensor) and image.shape[-3] == self.vae.config.latent_channels:
            return image if image.ndim == 4 else image.unsqueeze(0)
        f = self.vae_scale_factor
        pixels = super().preprocess_image(image, height * f, width * f)
        pixels = pixels.to(device=self.vae.device, dtype=self.vae.dtype)
        return self.vae.encode(pixels).latent_dist.mean * self.vae.config.scaling_factor

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> images in [-1, 1]."""
        latents = latents.to(device=self.vae.device, dtype=self.vae.dtype)
        return self.vae.decode(latents / self.vae.config.scaling_factor).sample

    def postprocess(self, sample: torch.Tensor, output_type: str, upscale: int, upscale_mode: str) -> Any:
        if output_type == "latent":
            return sample
        return super().postprocess(self.decode_latents(sample), output_type, upscale, upscale_mode)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] = "",
        height: int | None = None,
        width: int | None = None,
        **kwargs: Any,
    ) -> PixelDiffusionPipelineOutput | tuple:
        r"""As [`PixelDiffusionPipeline.__call__`], with `height`/`width` in pixels (multiples of
        `vae_scale_factor` times the UNet's down-sampling; default the native 64 px), `latents`
        in latent space, and `output_type="latent"` returning the undecoded latents."""
        f = self.vae_scale_factor
        height = (height or self.native_size) // f
        width = (width or self.native_size) // f
        return super().__call__(prompt, height=height, width=width, **kwargs)
