"""Real browser: open the Art tab, generate, watch the preview change, see the final image."""

from __future__ import annotations

import re
import time

from tests.browser.conftest import open_tab, shot


def _preview_src(page) -> str | None:
    img = page.locator("#art-preview img")
    return img.first.get_attribute("src") if img.count() else None


def test_generate_streams_previews_then_final(page) -> None:
    open_tab(page, "Art Platform")
    page.get_by_label("Prompt", exact=True).fill("a red circle on a blue background")
    # enough steps that the browser sees several distinct previews on the tiny debug model
    steps = page.locator("#art-steps input[type=number]")
    steps.fill("60")
    steps.press("Enter")
    page.get_by_role("button", name="Generate", exact=True).click()

    seen: list[str] = []
    deadline = time.time() + 60
    while time.time() < deadline:
        src = _preview_src(page)
        if src and (not seen or seen[-1] != src):
            seen.append(src)
        info = page.locator("#art-info textarea").input_value()
        if "Seed:" in info:
            break
        time.sleep(0.02)
    info = page.locator("#art-info textarea").input_value()
    assert "Steps: 60" in info and "Sampler: DDIM" in info, info
    assert len(seen) >= 3, f"expected the preview to change at least twice, saw {len(seen)} distinct images"
    page.locator("#art-gallery img").first.wait_for()
    page.locator("#art-preview img").first.wait_for()
    shot(page, "art_tab_desktop")


def test_phone_layout(page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    open_tab(page, "Art Platform")
    generate = page.get_by_role("button", name="Generate", exact=True)
    box = generate.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 390, box
    shot(page, "art_tab_phone", full_page=False)


def test_the_model_picker_says_what_the_offline_model_knows(page) -> None:
    open_tab(page, "Art Platform")
    panel = page.locator("#art-vocabulary")
    page.locator("#art-model input").click()
    page.get_by_role("option", name=re.compile(r"Offline v\d")).first.click()
    panel.wait_for(state="visible")
    panel.get_by_text("What the offline model knows").click()
    text = page.locator("#art-vocabulary-text")
    text.get_by_text("circle", exact=False).first.wait_for()
    assert "subjects" in text.inner_text() and "Styles:" in text.inner_text()
    shot(page, "art_vocabulary", full_page=False)
    # a model with no vocabulary (the debug model here, a hub model in real use) hides the panel
    page.locator("#art-model input").click()
    page.get_by_role("option", name=re.compile("Debug: tiny random SD")).click()
    panel.wait_for(state="hidden")
