"""gradio_client against the launched app: inpaint, outpaint and hires fix through the public API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image, ImageDraw

INPAINT = "/art_inpaint"
GENERATE = "/art_generate"


def editor(tmp_path: Path, mask: bool = True) -> dict:
    image = Image.new("RGB", (64, 64), (30, 90, 200))
    ImageDraw.Draw(image).ellipse((16, 16, 48, 48), fill=(220, 40, 40))
    image.save(tmp_path / "image.png")
    layer = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    if mask:
        ImageDraw.Draw(layer).rectangle((0, 0, 31, 31), fill=(255, 255, 255, 255))
    layer.save(tmp_path / "mask.png")
    return {
        "background": handle_file(str(tmp_path / "image.png")),
        "layers": [handle_file(str(tmp_path / "mask.png"))],
        "composite": None,
    }


def inpaint_args(
    value: dict, outpaint: tuple[int, int, int, int] = (0, 0, 0, 0), prompt: str = "a star"
) -> list:
    return [
        value, 4, "original", False, 32, *outpaint,
        "", prompt, "", "DDIM", 8, 7.0, 0, 0, "5", 1, 0.9, 1, 0,
    ]  # fmt: skip


def test_inpaint_keeps_unmasked_pixels(client, tmp_path: Path) -> None:
    value = editor(tmp_path)
    out = client.predict(*inpaint_args(value), api_name=INPAINT)
    info, path = out[2], out[3]
    assert "Mask blur: 4" in info and "Masked content: original" in info
    result = np.asarray(Image.open(path).convert("RGB")).astype(int)
    original = np.asarray(Image.open(tmp_path / "image.png").convert("RGB")).astype(int)
    assert result.shape == original.shape
    assert np.array_equal(result[48:, 48:], original[48:, 48:])  # far from the blurred mask
    assert np.abs(result[:24, :24] - original[:24, :24]).mean() > 10


def test_outpaint_grows_the_canvas(client, tmp_path: Path) -> None:
    value = editor(tmp_path, mask=False)
    out = client.predict(*inpaint_args(value, outpaint=(16, 0, 16, 8)), api_name=INPAINT)
    assert Image.open(out[3]).size == (96, 72) and "Outpaint: left 16 top 0 right 16 bottom 8" in out[2]


def test_empty_mask_and_missing_image_are_clear_errors(client, tmp_path: Path) -> None:
    with pytest.raises(AppError, match="mask is empty"):
        client.predict(*inpaint_args(editor(tmp_path, mask=False)), api_name=INPAINT)
    with pytest.raises(AppError, match="needs an image"):
        client.predict(*inpaint_args({"background": None, "layers": [], "composite": None}), api_name=INPAINT)


def test_hires_fix_through_generate(client) -> None:
    call = ["", "a castle", "", "DDIM", 6, 7.0, 64, 64, "3", 1, None, 0.6, 1, 0, "nearest"]
    out = client.predict(*call, True, 2.0, "latent", 0, 0.5, api_name=GENERATE)
    assert Image.open(out[3]).size == (128, 128) and "Hires upscale: 2.0" in out[2]
    with pytest.raises(AppError, match="Hires scale|less than minimum value 1.25"):
        client.predict(*call, True, 1.0, "latent", 0, 0.5, api_name=GENERATE)


def test_lora_through_generate(client, tmp_path: Path) -> None:
    from pipelines.testing import save_tiny_lora

    lora = save_tiny_lora(tmp_path / "lora")
    misfit = save_tiny_lora(tmp_path / "misfit", unet_config={"block_out_channels": (16, 32)})
    call = ["", "a castle", "", "DDIM", 4, 7.0, 64, 64, "3", 1, None, 0.6, 1, 0, "nearest"]
    hires_off = [False, 2.0, "latent", 0, 0.5, []]

    def pixels(lora_text: str) -> tuple[np.ndarray, str]:
        out = client.predict(*call, *hires_off, lora_text, api_name=GENERATE)
        return np.asarray(Image.open(out[3]).convert("RGB")).astype(int), out[2]

    plain, _ = pixels("")
    zero, _ = pixels(f"{lora} 0")
    one, info = pixels(f"{lora} 1")
    assert np.array_equal(zero, plain) and np.abs(one - plain).mean() > 0.5
    assert "<lora:pytorch_lora_weights:1>" in info
    with pytest.raises(AppError, match="does not fit this model"):
        pixels(f"{misfit} 1")
    assert np.array_equal(pixels("")[0], plain)  # the model still works, unchanged


def test_clip_score_and_guidance_through_generate(client, tmp_path: Path) -> None:
    from pipelines.testing import save_tiny_clip

    clip = str(save_tiny_clip(tmp_path / "clip"))
    call = ["", "a castle", "", "DDIM", 4, 7.0, 64, 64, "3", 1, None, 0.6, 1, 0, "nearest"]
    rest = [False, 2.0, "latent", 0, 0.5, [], ""]
    scored = client.predict(*call, *rest, clip, 0, api_name=GENERATE)
    assert "CLIP score: " in scored[2] and "CLIP guidance scale" not in scored[2]
    guided = client.predict(*call, *rest, clip, 1000, api_name=GENERATE)
    assert "CLIP guidance scale: 1000.0" in guided[2] and "CLIP score: " in guided[2]
    with pytest.raises(AppError, match="needs a CLIP model"):
        client.predict(*call, *rest, "", 100, api_name=GENERATE)
