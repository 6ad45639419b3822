"""Real browser: drop a PNG into PNG Info, read its parameters, send them to txt2img; styles preview."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, PngImagePlugin

from tests.browser.conftest import open_tab, shot

A1111 = (
    "a lighthouse on a cliff at dusk, oil painting\n"
    "Negative prompt: blurry\n"
    "Steps: 12, Sampler: Euler a, CFG scale: 4.5, Seed: 31337, Size: 64x64, Model: v1-5-pruned-emaonly"
)


def _a1111_png(path: Path) -> Path:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111)
    Image.new("RGB", (64, 64), (240, 140, 40)).save(path, pnginfo=info)
    return path


def _open_tools(page) -> None:
    open_tab(page, "Art Platform")
    page.get_by_text("PNG Info and X/Y/Z plot").click()
    page.get_by_role("tab", name="PNG Info").click()


def test_drop_a_png_and_send_its_parameters_to_txt2img(page, tmp_path: Path) -> None:
    _open_tools(page)
    page.locator("#pnginfo-file input[type=file]").set_input_files(str(_a1111_png(tmp_path / "shared.png")))
    text = page.locator("#pnginfo-text textarea")
    page.wait_for_function(
        "() => document.querySelector('#pnginfo-text textarea').value.includes('Seed: 31337')"
    )
    assert "Negative prompt: blurry" in text.input_value()
    assert "AUTOMATIC1111" in page.locator("#pnginfo-generator").inner_text()
    page.locator("#pnginfo-image img").first.wait_for()
    page.locator("#pnginfo-to-txt2img").click()
    prompt = page.get_by_label("Prompt", exact=True)
    page.wait_for_function(  # the Art prompt box itself (the PNG Info box shows the same words)
        "el => el.value.startsWith('a lighthouse on a cliff')", arg=prompt.element_handle()
    )
    assert prompt.input_value() == "a lighthouse on a cliff at dusk, oil painting"
    assert page.locator("#art-steps input[type=number]").input_value() == "12"
    page.locator("#art-tools").scroll_into_view_if_needed()
    shot(page, "art_tools_pnginfo")


def test_styles_show_the_final_prompt(page) -> None:
    open_tab(page, "Art Platform")
    page.get_by_label("Prompt", exact=True).fill("a red fox")
    styles = page.locator("#art-styles input")
    styles.click()
    page.get_by_role("option", name="Watercolor", exact=True).click()
    page.keyboard.press("Escape")
    page.wait_for_function(
        "() => document.querySelector('#art-final-prompt textarea').value.startsWith('watercolor painting of a red fox')"
    )
    shot(page, "art_tools_styles", full_page=False)


def test_xyz_plot_renders_a_labelled_grid(page) -> None:
    open_tab(page, "Art Platform")
    page.get_by_label("Prompt", exact=True).fill("a red circle")
    page.get_by_text("PNG Info and X/Y/Z plot").click()
    page.get_by_role("tab", name="X/Y/Z plot").click()
    page.locator("#xyz-x-values textarea, #xyz-x-values input").first.fill("1, 4, 7")
    page.locator("#xyz-run").click()
    page.wait_for_function(
        "() => (document.querySelector('#xyz-status')?.innerText || '').includes('3 × 1 × 1 grid, 3 images')",
        timeout=120_000,
    )
    page.locator("#xyz-grid img").first.wait_for()
    page.locator("#xyz-grid").scroll_into_view_if_needed()
    shot(page, "art_tools_xyz")


def test_expand_prompt_streams_into_the_prompt_box(page) -> None:
    open_tab(page, "Art Platform")
    prompt = page.get_by_label("Prompt", exact=True)
    prompt.fill("a lighthouse")
    page.locator("#art-expand").click()
    page.wait_for_function(
        "el => el.value.startsWith('a lighthouse, ')", arg=prompt.element_handle(), timeout=60_000
    )
    page.wait_for_function(
        "() => (document.querySelector('#art-final-prompt textarea')?.value || '').startsWith('a lighthouse, ')"
    )
    assert len(prompt.input_value()) > len("a lighthouse, ")
    shot(page, "art_tools_expand", full_page=False)
