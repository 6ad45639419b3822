"""Real browser: open Style Transfer, upload a photo, pick a style thumbnail, stylize, see before/after."""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image

from tests.browser.conftest import open_tab, shot

SAMPLE = Path(__file__).resolve().parents[2] / "assets" / "styles" / "sample.jpg"


def test_upload_pick_style_and_stylize(page, tmp_path: Path) -> None:
    content = tmp_path / "photo.png"
    Image.open(SAMPLE).convert("RGB").resize((200, 150)).save(content)
    open_tab(page, "Style Transfer")
    page.locator("#style-content input[type=file]").set_input_files(str(content))
    page.locator("#style-content img").first.wait_for()
    # pick style 19 from the thumbnail gallery: the Style dropdown follows the click
    page.locator("#style-gallery button").filter(
        has_text=re.compile(r"^\s*19 · Starry-night swirls\s*$")
    ).first.click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('input')].some(i => i.value === '19 · Starry-night swirls')",
        timeout=10_000,
    )
    page.locator("#style-run").click()
    page.wait_for_function(
        "() => (document.querySelector('#style-info textarea')?.value || '').includes('Saved to History')",
        timeout=60_000,
    )
    info = page.locator("#style-info textarea").input_value()
    assert "Style: style 19" in info and "Size: 200x150" in info, info
    page.locator("#style-result img").first.wait_for()
    assert page.locator("#style-compare img").count() >= 2, "before/after slider shows both images"
    shot(page, "style_tab_desktop")


def test_art_send_to_style_chain(page) -> None:
    """Art Platform -> "Send to Style Transfer" -> the Style tab opens with that image -> stylize."""
    open_tab(page, "Art Platform")
    page.get_by_label("Prompt", exact=True).fill("a red circle on a blue background")
    steps = page.locator("#art-steps input[type=number]")
    steps.fill("2")
    steps.press("Enter")
    page.get_by_role("button", name="Generate", exact=True).click()
    page.wait_for_function(
        "() => (document.querySelector('#art-info textarea')?.value || '').includes('Seed:')", timeout=60_000
    )
    page.get_by_role("button", name="Send to Style Transfer").click()
    page.locator("#style-content img").first.wait_for(timeout=20_000)
    assert page.get_by_role("tab", name="Style Transfer").get_attribute("aria-selected") == "true"
    page.locator("#style-run").click()
    page.wait_for_function(
        "() => (document.querySelector('#style-info textarea')?.value || '').includes('Saved to History')",
        timeout=60_000,
    )
    shot(page, "style_tab_from_art", full_page=False)


def test_any_style_image_mode(page, tmp_path: Path) -> None:
    content = tmp_path / "photo.png"
    Image.open(SAMPLE).convert("RGB").resize((240, 180)).save(content)
    open_tab(page, "Style Transfer")
    page.get_by_label("Any style image (fast)").check()
    page.locator("#style-image input[type=file]").set_input_files(str(SAMPLE.parent / "style_03.jpg"))
    page.locator("#style-content input[type=file]").set_input_files(str(content))
    page.locator("#style-detail").wait_for()
    assert not page.locator("#style-gallery").is_visible()  # the preset gallery hides in this mode
    page.locator("#style-run").click()
    page.wait_for_function(
        "() => (document.querySelector('#style-info textarea')?.value || '').includes('Saved to History')",
        timeout=60_000,
    )
    assert "Mode: image" in page.locator("#style-info textarea").input_value()
    shot(page, "style_tab_any_image")


def test_phone_layout(page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    # on a phone every tab is still a visible button (the tab bar wraps; no "More tabs" menu)
    assert not page.get_by_role("button", name="More tabs").is_visible()
    open_tab(page, "Style Transfer")
    run = page.locator("#style-run")
    run.scroll_into_view_if_needed()
    box = run.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 390, box
    shot(page, "style_tab_phone", full_page=False)
