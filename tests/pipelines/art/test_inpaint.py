"""Inpaint and outpaint on the tiny random SD, a tiny 9-channel inpainting SD and the offline model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pipelines.art.inpaint import (
    InpaintOptions,
    mask_from_image,
    outpaint_canvas,
    prepare_inpaint,
    run_inpaint,
)
from pipelines.art.models import DEBUG_ID, OFFLINE_DIR, OFFLINE_ID
from pipelines.art.pipeline import ArtPipeline, ArtRequest
from pipelines.metadata.png import read_png_parameters
from pipelines.testing import tiny_sd_components
from studio.events import CancelToken, Finished, Notice, Started, Step, UserError


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def scene(size: int) -> Image.Image:
    image = Image.new("RGB", (size, size), (30, 90, 200))
    ImageDraw.Draw(image).ellipse((size // 4, size // 4, size * 3 // 4, size * 3 // 4), fill=(220, 40, 40))
    return image


def square_mask(size: int) -> Image.Image:
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).rectangle((0, 0, size // 2 - 1, size // 2 - 1), fill=255)
    return mask


def run(art: ArtPipeline, request: ArtRequest) -> list:
    return list(art.generate(request, CancelToken()))


@pytest.fixture
def art(ctx) -> ArtPipeline:
    return ArtPipeline(ctx.registry, ctx.store, default_model=DEBUG_ID)


def outside_blurred(job_blurred: Image.Image) -> np.ndarray:
    return np.asarray(job_blurred) == 0


@pytest.mark.parametrize("content", ["original", "fill", "latent noise", "latent nothing"])
def test_inpaint_keeps_unmasked_pixels_and_changes_masked(art: ArtPipeline, content: str) -> None:
    image, mask = scene(64), square_mask(64)
    options = InpaintOptions(mask=mask, mask_blur=4, masked_content=content)
    events = run(art, ArtRequest("a star", steps=8, seed=3, init_image=image, strength=0.9, inpaint=options))
    assert isinstance(events[0], Started) and events[0].label.startswith("inpaint")
    assert isinstance(events[-1], Finished)
    result = events[-1].result.images[0]
    out, inp = np.asarray(result.image), np.asarray(image)
    assert result.image.size == image.size
    keep = outside_blurred(prepare_inpaint(image, options).blurred)
    assert keep.sum() > 0.5 * keep.size
    assert psnr(out[keep], inp[keep]) >= 40
    masked = np.asarray(mask) > 0
    assert np.abs(out[masked].astype(int) - inp[masked]).mean() > 10  # the masked region was redrawn
    assert "Mask blur: 4" in result.parameters and f"Masked content: {content}" in result.parameters


@pytest.mark.skipif(not (OFFLINE_DIR / "model_index.json").exists(), reason="offline model not bundled")
def test_offline_pixel_model_inpaints_with_repaint(ctx) -> None:
    art = ArtPipeline(ctx.registry, ctx.store, default_model=OFFLINE_ID)
    base = run(art, ArtRequest("a red circle in the middle in a blue sky", steps=12, seed=3))
    image = base[-1].result.images[0].image  # 256 px: the 32 px sample shown ×8
    mask = square_mask(image.width)
    options = InpaintOptions(mask=mask, mask_blur=8)
    events = run(
        art, ArtRequest("a yellow star in a blue sky", steps=12, seed=1, init_image=image, inpaint=options)
    )
    assert not any(isinstance(e, Notice) and "ignored" in e.message for e in events)
    out = events[-1].result.images[0].image
    keep = outside_blurred(prepare_inpaint(image, options).blurred)
    assert out.size == image.size and psnr(np.asarray(out)[keep], np.asarray(image)[keep]) >= 40
    masked = np.asarray(mask) > 0
    assert np.abs(np.asarray(out)[masked].astype(int) - np.asarray(image)[masked]).mean() > 2


@pytest.mark.skipif(not (OFFLINE_DIR / "model_index.json").exists(), reason="offline model not bundled")
def test_repaint_itself_keeps_the_known_region_before_the_composite(ctx) -> None:
    """Without the final paste-back, the blend at every step alone must reproduce the known region."""
    model = ctx.registry.load(OFFLINE_ID, "art").model
    image = scene(32)
    options = InpaintOptions(mask=square_mask(32), mask_blur=0)
    job = prepare_inpaint(image, options)
    import torch

    kwargs = {
        "prompt": "a yellow star in a blue sky",
        "num_inference_steps": 10,
        "guidance_scale": 2.0,
        "generator": torch.Generator("cpu").manual_seed(0),
    }
    drawn = run_inpaint(
        model.pipe, job, (32, 32), kwargs, 1.0, "original", lambda p, i, t, k: k, 0, keep_outside=False
    )
    keep = np.asarray(job.mask) == 0
    keep[15:18, :] = keep[:, 15:18] = False  # the 1 px seam next to the mask is redrawn with it
    assert psnr(np.asarray(drawn)[keep], np.asarray(image)[keep]) >= 40


def test_outpaint_grows_the_canvas_by_the_requested_size(art: ArtPipeline) -> None:
    image = scene(64)
    options = InpaintOptions(outpaint=(16, 8, 24, 0), mask_blur=2, masked_content="fill")
    events = run(art, ArtRequest("sky", steps=6, seed=1, init_image=image, strength=1.0, inpaint=options))
    assert events[0].label.startswith("outpaint")
    result = events[-1].result.images[0]
    assert result.image.size == (64 + 16 + 24, 64 + 8)
    keep = outside_blurred(prepare_inpaint(image, options).blurred)[8:72, 16:80]
    assert keep.sum() > 0.7 * keep.size  # most of the old picture is outside the blurred seam
    assert np.array_equal(np.asarray(result.image)[8:72, 16:80][keep], np.asarray(image)[keep])
    assert "Outpaint: left 16 top 8 right 24 bottom 0" in read_png_parameters(result.path).to_text()


def test_outpaint_canvas_masks_only_the_new_border() -> None:
    canvas, mask = outpaint_canvas(scene(10), 2, 3, 4, 5)
    assert canvas.size == (16, 18) and mask.size == (16, 18)
    m = np.asarray(mask)
    assert m[3:13, 2:12].max() == 0 and m.sum() == 255 * (16 * 18 - 100)


def test_wrong_size_mask_is_resized_with_a_notice(art: ArtPipeline) -> None:
    options = InpaintOptions(mask=square_mask(32))  # image is 64 px
    events = run(art, ArtRequest("x", steps=4, seed=1, init_image=scene(64), inpaint=options))
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert any("mask was 32×32" in n and "resized" in n for n in notices), notices
    assert events[-1].result.images[0].image.size == (64, 64)


def test_empty_mask_and_missing_image_are_clear_errors(art: ArtPipeline) -> None:
    empty = InpaintOptions(mask=Image.new("L", (64, 64), 0))
    with pytest.raises(UserError, match="mask is empty"):
        art.generate(ArtRequest("x", init_image=scene(64), inpaint=empty), CancelToken())
    with pytest.raises(UserError, match="needs an image"):
        art.generate(ArtRequest("x", inpaint=InpaintOptions(mask=square_mask(64))), CancelToken())
    bad = InpaintOptions(mask=square_mask(64), masked_content="magic")
    with pytest.raises(UserError, match="Masked content"):
        art.generate(ArtRequest("x", init_image=scene(64), inpaint=bad), CancelToken())


def test_mask_from_a_painted_layer_uses_its_alpha() -> None:
    layer = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    ImageDraw.Draw(layer).rectangle((0, 0, 3, 3), fill=(255, 0, 0, 255))
    mask = np.asarray(mask_from_image(layer))
    assert mask[:4, :4].min() == 255 and mask[4:, :].max() == 0


def test_only_masked_repaints_a_crop_and_leaves_the_rest(art: ArtPipeline) -> None:
    image = scene(128)
    mask = Image.new("L", (128, 128), 0)
    ImageDraw.Draw(mask).rectangle((90, 90, 110, 110), fill=255)
    options = InpaintOptions(mask=mask, mask_blur=2, only_masked=True, only_masked_padding=8)
    job = prepare_inpaint(image, options)
    left, top, right, bottom = job.region
    assert left <= 82 and top <= 82 and right >= 119 and bottom >= 119 and right - left == bottom - top
    events = run(art, ArtRequest("x", steps=4, seed=1, init_image=image, strength=1.0, inpaint=options))
    out = np.asarray(events[-1].result.images[0].image)
    assert np.array_equal(out[:left], np.asarray(image)[:left])  # outside the crop: untouched
    assert "Inpaint area: Only masked" in events[-1].result.images[0].parameters


def test_inpainting_checkpoint_runs_the_diffusers_inpaint_pipeline(ctx, tmp_path: Path) -> None:
    """A 9-channel UNet (SD "-inpainting" layout) goes through StableDiffusionInpaintPipeline."""
    from diffusers import StableDiffusionInpaintPipeline, UNet2DConditionModel

    components = tiny_sd_components()
    components["unet"] = UNet2DConditionModel(**{**components["unet"].config, "in_channels": 9})
    folder = tmp_path / "tiny-sd-inpainting"
    StableDiffusionInpaintPipeline(**components).save_pretrained(folder)
    art = ArtPipeline(ctx.registry, ctx.store, default_model=str(folder))
    image, mask = scene(64), square_mask(64)
    options = InpaintOptions(mask=mask, mask_blur=4)
    events = run(art, ArtRequest("x", steps=6, seed=2, init_image=image, strength=1.0, inpaint=options))
    assert not [e for e in events if isinstance(e, Notice)]  # loaded, no fallback
    steps = [e for e in events if isinstance(e, Step)]
    assert steps and steps[-1].index == 6
    out = np.asarray(events[-1].result.images[0].image)
    keep = outside_blurred(prepare_inpaint(image, options).blurred)
    assert psnr(out[keep], np.asarray(image)[keep]) >= 40
    assert np.abs(out[np.asarray(mask) > 0].astype(int) - np.asarray(image)[np.asarray(mask) > 0]).mean() > 10


def test_inpainting_checkpoint_also_draws_text_to_image(ctx, tmp_path: Path) -> None:
    """Generate with a 9-channel checkpoint: the whole canvas is masked (A1111 does the same)."""
    from diffusers import StableDiffusionInpaintPipeline, UNet2DConditionModel

    components = tiny_sd_components()
    components["unet"] = UNet2DConditionModel(**{**components["unet"].config, "in_channels": 9})
    folder = tmp_path / "tiny-sd-inpainting"
    StableDiffusionInpaintPipeline(**components).save_pretrained(folder)
    art = ArtPipeline(ctx.registry, ctx.store, default_model=str(folder))
    events = run(art, ArtRequest("x", steps=4, seed=2))
    assert not [e for e in events if isinstance(e, Notice)] and [e for e in events if isinstance(e, Step)]
    image = events[-1].result.images[0].image
    assert image.size == (64, 64) and np.asarray(image).std() > 1


def test_cancel_stops_an_inpaint_within_a_step_and_saves_nothing(art: ArtPipeline) -> None:
    cancel = CancelToken()
    options = InpaintOptions(mask=square_mask(64))
    request = ArtRequest("x", steps=40, seed=1, init_image=scene(64), strength=1.0, inpaint=options)
    indices, result = [], None
    for event in art.generate(request, cancel):
        if isinstance(event, Step):
            indices.append(event.index)
            if event.index >= 3:
                cancel.cancel()
        if isinstance(event, Finished):
            result = event.result
    assert max(indices) <= 5 and result.cancelled and result.images == []
