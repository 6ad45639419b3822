from __future__ import annotations

import time

import torch

from pipelines.art.latent_preview import LatentPreviewer, fit_previewer, previewer_for
from pipelines.testing import tiny_sd_components


def test_known_factors_are_cheap() -> None:
    previewer = LatentPreviewer.known("sd15")
    latents = torch.randn(1, 4, 64, 64)  # a 512x512 SD latent
    start = time.perf_counter()
    for _ in range(20):
        image = previewer(latents)
    per_call_ms = (time.perf_counter() - start) / 20 * 1000
    assert image.size == (64, 64)
    assert per_call_ms < 5  # "well under 1 ms" on a free core; generous bound for a shared box


def test_fitted_map_tracks_the_vae_decode() -> None:
    vae = tiny_sd_components()["vae"]
    previewer = fit_previewer(vae, n_images=4)
    # held-out image: the fitted linear map should explain the decode better than a zero map
    image = torch.nn.functional.interpolate(torch.rand(1, 3, 3, 3) * 2 - 1, size=(64, 64), mode="bicubic")
    with torch.no_grad():
        latents = vae.encode(image).latent_dist.mean * vae.config.scaling_factor
        decoded = vae.decode(latents / vae.config.scaling_factor).sample
    target = torch.nn.functional.avg_pool2d(decoded, 2)[0].permute(1, 2, 0)
    predicted = torch.einsum("chw,cr->hwr", latents[0], previewer.factors) + previewer.bias
    assert previewer.kind == "fitted"
    assert (predicted - target).pow(2).mean() < (target - target.mean((0, 1))).pow(2).mean()


def test_pixel_models_preview_the_sample() -> None:
    class Pixel:
        latent_space = "pixel"

    previewer = previewer_for(Pixel())
    sample = torch.ones(1, 3, 8, 8)  # white in [-1, 1]
    assert previewer.kind == "pixel" and previewer(sample).getpixel((0, 0)) == (255, 255, 255)
