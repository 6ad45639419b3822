"""Hires fix: two passes (small, upscaled, img2img) on the tiny random SD and the offline model."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.art.hires import HiresOptions
from pipelines.art.models import DEBUG_ID, OFFLINE_DIR, OFFLINE_ID
from pipelines.art.pipeline import ArtPipeline, ArtRequest
from studio.events import CancelToken, Finished, Started, Step, UserError


def run(art: ArtPipeline, request: ArtRequest) -> list:
    return list(art.generate(request, CancelToken()))


@pytest.mark.parametrize("upscaler", ["latent", "lanczos"])
def test_hires_on_a_latent_model_doubles_the_size_with_progress_across_both_passes(
    ctx, upscaler: str
) -> None:
    art = ArtPipeline(ctx.registry, ctx.store, default_model=DEBUG_ID)
    hires = HiresOptions(scale=2.0, upscaler=upscaler, steps=10, denoising_strength=0.5)
    events = run(art, ArtRequest("a castle", steps=6, seed=4, width=64, height=48, hires=hires))
    assert isinstance(events[0], Started) and events[0].total == 6 + 5
    steps = [e for e in events if isinstance(e, Step)]
    assert steps[-1].index == 11 and all(e.total == 11 for e in steps)
    assert [s.index for s in steps] == sorted(s.index for s in steps)
    assert all(s.preview is not None for s in steps)
    result = events[-1].result.images[0]
    assert result.image.size == (128, 96)
    assert "Hires upscale: 2.0" in result.parameters and f"Hires upscaler: {upscaler}" in result.parameters
    assert "Hires steps: 10" in result.parameters and "Denoising strength: 0.5" in result.parameters
    assert "Size: 128x96" in result.parameters


def test_hires_second_pass_changes_the_plain_upscale(ctx) -> None:
    art = ArtPipeline(ctx.registry, ctx.store, default_model=DEBUG_ID)
    low = run(art, ArtRequest("x", steps=6, seed=9, hires=HiresOptions(denoising_strength=0.2)))
    high = run(art, ArtRequest("x", steps=6, seed=9, hires=HiresOptions(denoising_strength=0.9)))
    a, b = (np.asarray(e[-1].result.images[0].image).astype(int) for e in (low, high))
    assert a.shape == b.shape == (128, 128, 3) and np.abs(a - b).mean() > 1


@pytest.mark.skipif(not (OFFLINE_DIR / "model_index.json").exists(), reason="offline model not bundled")
def test_hires_on_the_offline_pixel_model_redraws_at_twice_the_resolution(ctx) -> None:
    art = ArtPipeline(ctx.registry, ctx.store, default_model=OFFLINE_ID)
    prompt = "a red circle in the middle in a blue sky"
    plain = run(art, ArtRequest(prompt, steps=10, seed=5, guidance_scale=2.0))[-1].result.images[0]
    hires = HiresOptions(scale=2.0, upscaler="lanczos", denoising_strength=0.4)
    events = run(art, ArtRequest(prompt, steps=10, seed=5, guidance_scale=2.0, hires=hires))
    assert isinstance(events[-1], Finished) and events[0].total == 10 + 4
    image = events[-1].result.images[0].image
    assert image.size == plain.image.size == (256, 256)  # 64 px drawn, shown ×4 (plain: 32 px ×8)
    # the plain result is made of 8x8 blocks; the hires one has detail inside every 8x8 block
    hires_pixels = np.asarray(image).astype(int)
    blocks = hires_pixels.reshape(32, 8, 32, 8, 3)
    assert (blocks.max(axis=(1, 3)) - blocks.min(axis=(1, 3))).mean() > 1
    plain_blocks = np.asarray(plain.image).astype(int).reshape(32, 8, 32, 8, 3)
    assert (plain_blocks.max(axis=(1, 3)) - plain_blocks.min(axis=(1, 3))).max() == 0


def test_hires_bad_input_is_refused(ctx) -> None:
    from PIL import Image

    art = ArtPipeline(ctx.registry, ctx.store, default_model=DEBUG_ID)
    with pytest.raises(UserError, match="Hires scale"):
        art.generate(ArtRequest("x", hires=HiresOptions(scale=9)), CancelToken())
    with pytest.raises(UserError, match="upscaler"):
        art.generate(ArtRequest("x", hires=HiresOptions(upscaler="esrgan")), CancelToken())
    with pytest.raises(UserError, match="text-to-image"):
        art.generate(
            ArtRequest("x", init_image=Image.new("RGB", (8, 8)), hires=HiresOptions()), CancelToken()
        )
    with pytest.raises(UserError, match="below one step"):
        art.generate(ArtRequest("x", steps=6, hires=HiresOptions(denoising_strength=0.1)), CancelToken())
    with pytest.raises(UserError, match="over this device"):
        run(art, ArtRequest("x", steps=2, width=1024, height=1024, hires=HiresOptions(scale=2)))


def test_cancel_during_the_first_hires_pass_stops_both(ctx) -> None:
    art = ArtPipeline(ctx.registry, ctx.store, default_model=DEBUG_ID)
    cancel = CancelToken()
    indices, result = [], None
    for event in art.generate(ArtRequest("x", steps=30, seed=1, hires=HiresOptions()), cancel):
        if isinstance(event, Step):
            indices.append(event.index)
            if event.index >= 3:
                cancel.cancel()
        if isinstance(event, Finished):
            result = event.result
    assert max(indices) <= 6 and result.cancelled and result.images == []
