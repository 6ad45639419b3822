"""gradio_client against the launched app: PNG Info + send-to, X/Y/Z plot, prompt expansion, styles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image, PngImagePlugin

from pipelines.art import ArtPipeline, ArtRequest
from pipelines.metadata import read_png_parameters
from studio.events import CancelToken
from tests.pipelines.metadata.test_pnginfo import comfy_chunks

DEBUG_SD = "debug-tiny-sd"


@pytest.fixture(scope="module")
def our_png(launched_app) -> Path:
    """A file written by this app (the Art pipeline on the launched app's own store)."""
    ctx = launched_app.ctx
    art = ArtPipeline(ctx.registry, ctx.store, DEBUG_SD)
    request = ArtRequest("a red circle", "blurry", sampler="Euler a", steps=3, guidance_scale=5.5, seed=4242)
    return list(art.generate(request, CancelToken()))[-1].result.images[0].path


def _png(path: Path, chunks: dict[str, str]) -> Path:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    Image.new("RGB", (64, 64), (10, 120, 200)).save(path, pnginfo=info)
    return path


def test_pnginfo_reads_our_file_and_send_to_fills_the_same_values(client, our_png: Path) -> None:
    shown, head, text, raw = client.predict(handle_file(str(our_png)), api_name="/art_pnginfo")
    assert "Creative Studio" in head and "Seed: 4242" in text and "Negative prompt: blurry" in text
    assert "parameters" in raw
    values = client.predict(handle_file(str(our_png)), api_name="/art_pnginfo_to_txt2img")
    saved = read_png_parameters(our_png)
    model, prompt, negative, sampler, steps, cfg, width, height, seed = values
    assert (model, prompt, negative, sampler) == (DEBUG_SD, saved.prompt, saved.negative_prompt, "Euler a")
    assert (steps, cfg, seed) == (3, 5.5, "4242")
    assert f"{int(width)}x{int(height)}" == saved.settings["Size"]
    # img2img gets the same values plus the image itself as the init image
    *same, init = client.predict(handle_file(str(our_png)), api_name="/art_pnginfo_to_img2img")
    assert same == list(values)
    with Image.open(init) as a, Image.open(our_png) as b:
        assert a.size == b.size


def test_send_to_from_a1111_and_comfyui_files(client, tmp_path: Path) -> None:
    a1111 = "a castle\nNegative prompt: fog\nSteps: 12, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6, Seed: 99, Size: 512x768, Model: v1-5"
    values = client.predict(
        handle_file(str(_png(tmp_path / "a.png", {"parameters": a1111}))), api_name="/art_pnginfo_to_txt2img"
    )
    assert list(values[1:]) == ["a castle", "fog", "DPM++ 2M Karras", 12, 6.0, 512, 768, "99"]
    comfy = _png(tmp_path / "c.png", comfy_chunks(seed=5))
    head = client.predict(handle_file(str(comfy)), api_name="/art_pnginfo")[1]
    assert "ComfyUI" in head
    values = client.predict(handle_file(str(comfy)), api_name="/art_pnginfo_to_txt2img")
    assert list(values[1:]) == ["a fox in the snow", "watermark", "Euler a", 20, 8.0, 832, 1216, "5"]


def test_no_metadata_and_corrupt_files(client, tmp_path: Path) -> None:
    plain = tmp_path / "plain.png"
    Image.new("RGB", (16, 16)).save(plain)
    _, head, text, _ = client.predict(handle_file(str(plain)), api_name="/art_pnginfo")
    assert "No generation parameters found" in head and "No generation parameters" in text
    with pytest.raises(AppError, match="holds no generation parameters"):
        client.predict(handle_file(str(plain)), api_name="/art_pnginfo_to_txt2img")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(AppError, match="empty"):
        client.predict(handle_file(str(empty)), api_name="/art_pnginfo")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(AppError, match="could not be read as an image"):
        client.predict(handle_file(str(corrupt)), api_name="/art_pnginfo")


def xyz_args(
    prompt: str,
    x: tuple[str, str],
    y: tuple[str, str] = ("Nothing", ""),
    styles: list | None = None,
    clip: str = "",
) -> list:
    return [
        DEBUG_SD, prompt, "", "DDIM", 2, 7.0, 0, 0, "11", None, 0.6, styles or [],
        *x, *y, "Nothing", "", clip,
    ]  # fmt: skip


def test_xyz_plot_via_api(client) -> None:
    grid, status, files, cells = client.predict(
        *xyz_args("a red circle", ("Steps", "1-3"), ("Sampler", "DDIM, Euler a")), api_name="/art_xyz"
    )
    assert "3 × 2 × 1 grid, 6 images" in status and "History" in status
    assert len(cells) == 6 and {c["label"] for c in cells} >= {
        "Steps: 1 · Sampler: DDIM",
        "Steps: 3 · Sampler: Euler a",
    }
    with Image.open(grid) as image:
        assert image.width > 3 * 128 and image.height > 2 * 128
    side = next(f for f in files if f.endswith(".json"))
    assert len(json.loads(Path(side).read_text())["cells"]) == 6
    # the Styles chosen in the Art controls apply to every cell and are recorded
    *_, styled = client.predict(
        *xyz_args("a boat", ("Seed", "1, 2"), styles=["Pixel art"]), api_name="/art_xyz"
    )
    assert all(
        c["parameters"].startswith("pixel art of a boat") and "Styles: Pixel art" in c["parameters"]
        for c in styled
    )
    with pytest.raises(AppError, match="the limit is 100"):
        client.predict(*xyz_args("x", ("Seed", "1-20"), ("CFG scale", "1-6")), api_name="/art_xyz")


def test_prompt_expansion_via_api_is_seeded(client) -> None:
    a = client.predict("a lighthouse", 7, api_name="/art_expand_prompt")
    b = client.predict("a lighthouse", 7, api_name="/art_expand_prompt")
    assert a == b and a.startswith("a lighthouse, ") and len(a) > len("a lighthouse, ")
    with pytest.raises(AppError, match="Write a short prompt first"):
        client.predict("", 7, api_name="/art_expand_prompt")


def test_send_to_asks_for_the_generation_size_not_the_saved_size() -> None:
    from pages.art_tools import _generation_size
    from pipelines.metadata import PngInfo

    ours = "Creative Studio"
    assert _generation_size(PngInfo(ours, width=128, height=96, settings={"Hires upscale": "2.0"})) == (
        64,
        48,
    )
    assert _generation_size(PngInfo(ours, width=256, height=256, settings={"Upscale": "8x nearest"})) == (
        32,
        32,
    )
    # A1111 records the first-pass size already
    assert _generation_size(
        PngInfo("AUTOMATIC1111", width=512, height=512, settings={"Hires upscale": "2"})
    ) == (512, 512)
    assert _generation_size(PngInfo("ComfyUI", width=500, height=300)) == (None, None)  # not a multiple of 8


def test_xyz_clip_score_via_api(client, tmp_path: Path) -> None:
    from pipelines.testing import save_tiny_clip

    clip = str(save_tiny_clip(tmp_path / "tiny-clip"))
    _, status, _, cells = client.predict(*xyz_args("a dot", ("Seed", "1, 2"), clip=clip), api_name="/art_xyz")
    assert "2 images" in status and all(" · CLIP " in c["label"] for c in cells)
    with pytest.raises(AppError, match="could not be loaded"):
        client.predict(*xyz_args("a dot", ("Seed", "1, 2"), clip="no-such/clip-model"), api_name="/art_xyz")
