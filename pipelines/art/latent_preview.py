"""Cheap previews of an in-progress denoise: a linear latent -> RGB map (well under 1 ms).

For the SD 1.x/2.x and SDXL VAEs the 4x3 factors are known (the ones ComfyUI and A1111 use).
For any other VAE the map is fitted by least squares, once at load time, from a few real VAE
decodes; so previews work for any latent model. Pixel-space models need no map at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

# rows: latent channel, columns: R, G, B  (applied to diffusion-space latents)
SD15_FACTORS = [
    [0.3512, 0.2297, 0.3227],
    [0.3250, 0.4974, 0.2350],
    [-0.2829, 0.1762, 0.2721],
    [-0.2120, -0.2616, -0.7177],
]
SDXL_FACTORS = [
    [0.3651, 0.4232, 0.4341],
    [-0.2533, -0.0042, 0.1068],
    [0.1076, 0.1111, -0.0362],
    [-0.3165, -0.2492, -0.2188],
]
SDXL_BIAS = [0.1084, -0.0175, -0.0011]
SD_VAE_BLOCKS = [128, 256, 512, 512]  # the AutoencoderKL shared by SD 1.x, 2.x and SDXL


@dataclass(frozen=True)
class LatentPreviewer:
    """latents [B, C, h, w] -> PIL preview of the first image."""

    factors: torch.Tensor  # [C, 3]
    bias: torch.Tensor  # [3]
    kind: str  # "sd15", "sdxl", "fitted" or "pixel"

    @torch.no_grad()
    def __call__(self, latents: torch.Tensor) -> Image.Image:
        x = latents[0].detach().float().cpu()  # [C, h, w]
        if self.kind == "pixel":
            rgb = x.permute(1, 2, 0)  # the sample is already an image in [-1, 1]
        else:
            rgb = torch.einsum("chw,cr->hwr", x, self.factors) + self.bias
        rgb = ((rgb + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
        return Image.fromarray(rgb)

    @classmethod
    def pixel(cls) -> LatentPreviewer:
        return cls(torch.eye(3), torch.zeros(3), "pixel")

    @classmethod
    def known(cls, kind: str) -> LatentPreviewer:
        if kind == "sdxl":
            return cls(torch.tensor(SDXL_FACTORS), torch.tensor(SDXL_BIAS), "sdxl")
        return cls(torch.tensor(SD15_FACTORS), torch.zeros(3), "sd15")


def previewer_for(pipe: object, fit_images: int = 4, seed: int = 0) -> LatentPreviewer:
    """Pick known factors for the SD family's VAE, else fit them from VAE decodes."""
    if getattr(pipe, "latent_space", "latent") == "pixel" or getattr(pipe, "vae", None) is None:
        return LatentPreviewer.pixel()
    vae = pipe.vae
    config = vae.config
    if list(config.block_out_channels) == SD_VAE_BLOCKS and config.latent_channels == 4:
        return LatentPreviewer.known("sdxl" if abs(config.scaling_factor - 0.13025) < 1e-4 else "sd15")
    return fit_previewer(vae, fit_images, seed)


@torch.no_grad()
def fit_previewer(vae: torch.nn.Module, n_images: int = 4, seed: int = 0, size: int = 64) -> LatentPreviewer:
    """Least-squares fit of RGB ≈ latent @ W + b, over pixels of a few encoded+decoded images.

    The fitting images are smooth colour fields (gradients and blobs) so every colour direction
    is represented; the targets are the VAE's own decodes, pooled to latent resolution.
    """
    config = vae.config
    scale = 2 ** (len(config.block_out_channels) - 1)
    size = max(size, scale * 8)
    rng = np.random.default_rng(seed)
    # 1. smooth random colour images in [-1, 1]
    coarse = rng.uniform(-1, 1, size=(n_images, 3, 4, 4)).astype(np.float32)
    images = torch.nn.functional.interpolate(torch.from_numpy(coarse), size=(size, size), mode="bicubic")
    param = next(vae.parameters())
    images = images.clamp(-1, 1).to(param.device, param.dtype)
    # 2. encode to diffusion-space latents, then decode back: the preview must mimic the decode
    latents = vae.encode(images).latent_dist.mean * config.scaling_factor
    decoded = vae.decode(latents / config.scaling_factor).sample.float()
    pooled = torch.nn.functional.avg_pool2d(decoded, scale)  # [N, 3, h, w]
    # 3. solve [latents | 1] @ [W; b] = rgb by least squares over all latent pixels
    channels = latents.shape[1]
    x = latents.float().permute(0, 2, 3, 1).reshape(-1, channels).cpu()
    y = pooled.permute(0, 2, 3, 1).reshape(-1, 3).cpu()
    x1 = torch.cat([x, torch.ones(len(x), 1)], dim=1)
    solution = torch.linalg.lstsq(x1, y).solution  # [C + 1, 3]
    return LatentPreviewer(solution[:channels].contiguous(), solution[channels].contiguous(), "fitted")
