"""Real browser: upload an image to the inpaint editor, paint a mask with the mouse, inpaint, see the result."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tests.browser.conftest import open_tab, shot


def scene(path: Path) -> Image.Image:
    image = Image.new("RGB", (64, 64), (30, 90, 200))
    ImageDraw.Draw(image).ellipse((16, 16, 48, 48), fill=(220, 40, 40))
    image.save(path)
    return image


def test_paint_a_mask_and_inpaint(page, tmp_path: Path) -> None:
    source = scene(tmp_path / "scene.png")
    open_tab(page, "Art Platform")
    page.get_by_label("Prompt", exact=True).fill("a yellow star")
    page.locator("#art-inpaint").get_by_text("Inpaint / outpaint").first.click()
    editor = page.locator("#art-inpaint-editor")
    editor.scroll_into_view_if_needed()
    # 1. upload through the editor's own Upload tool
    with page.expect_file_chooser() as chooser:
        editor.get_by_role("button", name="Upload").click()
    chooser.value.set_files(str(tmp_path / "scene.png"))
    canvas = editor.locator(".pixi-target canvas").first
    canvas.wait_for()
    page.wait_for_timeout(1000)
    # 2. paint the top-left quarter with the brush (the editor selects it after an upload), in a few strokes
    assert "highlight" in (
        editor.get_by_role("button", name="Brush", exact=True).get_attribute("class") or ""
    )
    box = canvas.bounding_box()
    # the image is drawn centred in the canvas, fitted to its height (side ≈ 0.83 of it): stay well inside
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    side = 0.8 * min(box["width"], box["height"])
    for row in np.linspace(-0.42, -0.12, 5):
        page.mouse.move(cx - side * 0.42, cy + side * row)
        page.mouse.down()
        page.mouse.move(cx - side * 0.12, cy + side * row, steps=12)
        page.mouse.up()
    shot(page, "art_inpaint_mask_painted", full_page=False)
    # 3. inpaint and wait for the parameters of the result
    page.locator("#art-inpaint-btn").click()
    info = page.locator("#art-info textarea")
    deadline = time.time() + 90
    while time.time() < deadline and "Mask blur" not in info.input_value():
        time.sleep(0.1)
    assert "Mask blur: 4" in info.input_value() and "Masked content: original" in info.input_value()
    src = page.locator("#art-preview img").first.get_attribute("src")
    result = Image.open(io.BytesIO(page.request.get(src).body())).convert("RGB")
    out, inp = np.asarray(result).astype(int), np.asarray(source).astype(int)
    assert out.shape == inp.shape
    assert np.abs(out[4:20, 4:20] - inp[4:20, 4:20]).mean() > 10  # the painted region was redrawn
    assert np.array_equal(out[44:, 44:], inp[44:, 44:])  # far from the painted region: the input
    page.locator("#art-preview").scroll_into_view_if_needed()
    shot(page, "art_inpaint_result", full_page=False)
