"""LatentArtPipeline (offline art model v2): a tiny random VAE + UNet round trip through the
pipeline, save/load, img2img, callbacks and the fitted latent preview. Real MiniLM, no mocks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.art.latent_diffusion import LATENT_TEXT_MAX_LENGTH, LatentArtPipeline
from pipelines.art.latent_preview import previewer_for
from pipelines.art.pixel_diffusion import MiniLMTextEncoder
from pipelines.testing import tiny_latent_art_components
from training.art_latent.train_unet import latent_scheduler


@pytest.fixture(scope="module")
def encoder() -> MiniLMTextEncoder:
    return MiniLMTextEncoder(max_length=LATENT_TEXT_MAX_LENGTH)


@pytest.fixture
def tiny_pipe(encoder: MiniLMTextEncoder) -> LatentArtPipeline:
    vae, unet = tiny_latent_art_components()
    pipe = LatentArtPipeline(vae=vae, unet=unet, scheduler=latent_scheduler())
    pipe.set_text_encoder(encoder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_generates_native_64px_from_16px_latents(tiny_pipe: LatentArtPipeline) -> None:
    assert tiny_pipe.vae_scale_factor == 4 and tiny_pipe.native_size == 64
    seen = []

    def callback(pipe, i, t, kwargs):
        seen.append(kwargs["latents"].shape)
        return kwargs

    out = tiny_pipe(
        "a red apple, food and drink, flat twemoji style",
        num_inference_steps=3,
        generator=torch.Generator().manual_seed(0),
        callback_on_step_end=callback,
    )
    assert out.images[0].size == (64, 64)
    assert seen == [torch.Size([1, 4, 16, 16])] * 3  # the callback sees latents, not pixels
    again = tiny_pipe(
        "a red apple, food and drink, flat twemoji style",
        num_inference_steps=3,
        generator=torch.Generator().manual_seed(0),
    )
    assert np.array_equal(np.asarray(out.images[0]), np.asarray(again.images[0]))


def test_output_types_and_img2img(tiny_pipe: LatentArtPipeline) -> None:
    lat = tiny_pipe("a cat", num_inference_steps=2, output_type="latent").images
    assert lat.shape == (1, 4, 16, 16)
    arr = tiny_pipe(["a cat", "a dog"], num_inference_steps=2, output_type="np").images
    assert arr.shape == (2, 64, 64, 3) and 0 <= arr.min() and arr.max() <= 1
    init = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    from PIL import Image

    out = tiny_pipe(
        "a cat", image=Image.fromarray(init), strength=0.5, num_inference_steps=4, output_type="pt"
    )
    assert out.images.shape == (1, 3, 64, 64)
    kept = tiny_pipe(
        "a cat", image=Image.fromarray(init), strength=0.0, num_inference_steps=4, output_type="pt"
    )
    # strength 0 keeps the image: just a VAE round trip
    assert kept.images.shape == (1, 3, 64, 64)


def test_save_load_roundtrip_and_version(tiny_pipe: LatentArtPipeline, tmp_path: Path, encoder) -> None:
    tiny_pipe.save_pretrained(tmp_path / "p", safe_serialization=True)
    index = json.loads((tmp_path / "p" / "model_index.json").read_text())
    assert index["_class_name"] == "LatentArtPipeline"
    assert index["model_version"] == "2.0" and index["text_max_length"] == LATENT_TEXT_MAX_LENGTH
    assert not (tmp_path / "p" / "text_encoder").exists()  # MiniLM comes from its wheel
    loaded = LatentArtPipeline.from_pretrained(tmp_path / "p")
    loaded.set_text_encoder(encoder)
    loaded.set_progress_bar_config(disable=True)
    a = tiny_pipe(
        "a cat", num_inference_steps=2, generator=torch.Generator().manual_seed(1), output_type="np"
    )
    b = loaded("a cat", num_inference_steps=2, generator=torch.Generator().manual_seed(1), output_type="np")
    assert np.allclose(a.images, b.images, atol=1e-5)


def test_preview_map_is_fitted_from_the_vae(tiny_pipe: LatentArtPipeline) -> None:
    previewer = previewer_for(tiny_pipe)
    assert previewer.kind == "fitted" and previewer.factors.shape == (4, 3)
    latents = tiny_pipe("a cat", num_inference_steps=2, output_type="latent").images
    assert previewer(latents).size == (16, 16)
