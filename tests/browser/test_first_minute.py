"""Playwright, issue 16 ("the first minute of a new artist"), at 1440 and 390 px on the tiny models.

- During a generation the preview is visible and nothing covers it: at its centre point the element
  is the preview itself, not Gradio's progress overlay, on at least half of the preview updates
  (progress shows in the job's own panel, pages.common.progress_on).
- At 390 px every top tab and every Music sub-tab is a visible button (no "•••" overflow menu).
- No gallery image is cropped: the displayed picture has the file's aspect ratio and fits its cell.
- Music progress reads "Bar k/n" with k ≤ n, and the served WAV is at the target loudness.
Screenshots go to test-artifacts/ (first_minute_*.png).
"""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from tests.browser.conftest import open_tab, shot

pytestmark = pytest.mark.browser

WIDTHS = [1440, 390]
SAMPLE = Path(__file__).resolve().parents[2] / "assets" / "styles" / "sample.jpg"
TOP_TABS = ["Writing Assistant", "Art Platform", "Music", "Style Transfer", "Video"]
MUSIC_TABS = ["Compose", "Continue", "Analyse", "Text to music (hub)"]

# what is at the preview's centre: "ok", "covered: …" (Gradio's status tracker or anything outside
# the preview), or "missing" (no preview element yet)
AT_CENTRE = """([rootSel, targetSel]) => {
  const root = document.querySelector(rootSel);
  const target = root && (targetSel ? root.querySelector(targetSel) : root);
  if (!target) return 'missing';
  let r = target.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) return 'missing';
  if (r.top < 0 || r.bottom > innerHeight) { target.scrollIntoView({block: 'center'}); r = target.getBoundingClientRect(); }
  const el = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  if (!el) return 'covered: nothing';
  if (el.closest('[data-testid="status-tracker"]')) return 'covered: progress overlay';
  if (el === target || target.contains(el) || (root.contains(el) && el.contains(target))) return 'ok';
  if (root.contains(el)) return 'ok';
  return 'covered: ' + el.tagName + '.' + el.className;
}"""

# every gallery image shown whole: the painted picture keeps the file's ratio and fits its cell
WHOLE_IMAGES = """(sel) => [...document.querySelectorAll(sel + ' img')].map(img => {
  const r = img.getBoundingClientRect(), fit = getComputedStyle(img).objectFit;
  const nw = img.naturalWidth, nh = img.naturalHeight;
  let w = r.width, h = r.height;
  if (fit === 'contain' || fit === 'scale-down') { const s = Math.min(r.width / nw, r.height / nh); w = nw * s; h = nh * s; }
  else if (fit === 'cover') { w = -1; }
  const cell = img.closest('.thumbnail-item') || img.parentElement, c = cell.getBoundingClientRect();
  const box = img.closest('.grid-wrap') || cell, b = box.getBoundingClientRect();
  return {src: img.src.slice(-40), fit, natural: nw / nh, shown: w / h, fits: w <= c.width + 1 && h <= c.height + 1,
          inside: c.left >= b.left - 1 && c.right <= b.right + 1, loaded: img.complete && nw > 0};
})"""


def sized(page, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900 if width > 640 else 844})


def set_number(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(value)
    box.press("Enter")


def watch_preview(
    page, name: str, root: str, target: str | None, key_js: str, done_js: str, keys: list | None = None
) -> list[str]:
    """Sample the preview's centre on every preview update until `done_js`; screenshot one update.

    An update is a change of `key_js` (the preview's src, the text's length, …), kept in `keys`.
    """
    results: list[str] = []
    last = None
    shot_taken = False
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if page.evaluate(done_js):
            break
        key = page.evaluate(key_js)
        if key and key != last:
            last = key
            if keys is not None:
                keys.append(key)
            results.append(page.evaluate(AT_CENTRE, [root, target]))
            if len(results) == 3 and not shot_taken:
                shot(page, f"first_minute_{name}_during", full_page=False)
                shot_taken = True
        time.sleep(0.03)
    else:
        raise AssertionError(f"{name}: the job did not finish in 90 s")
    return results


def assert_mostly_uncovered(name: str, results: list[str]) -> None:
    seen = [r for r in results if r != "missing"]
    assert seen, f"{name}: no preview update was seen"
    ok = sum(r == "ok" for r in seen)
    assert ok * 2 >= len(seen), f"{name}: preview covered on {len(seen) - ok}/{len(seen)} updates: {seen}"


@pytest.mark.parametrize("width", WIDTHS)
def test_art_preview_uncovered_and_gallery_whole(page, width: int) -> None:
    sized(page, width)
    open_tab(page, "Art Platform")
    page.get_by_label("Prompt", exact=True).fill("a red circle on a blue background")
    set_number(page, "art-steps", "30")
    page.get_by_role("button", name="Generate", exact=True).click()
    results = watch_preview(
        page,
        f"art_{width}",
        "#art-preview",
        "img",
        "() => document.querySelector('#art-preview img')?.src || ''",
        "() => (document.querySelector('#art-info textarea')?.value || '').includes('Seed:')",
    )
    assert_mostly_uncovered("art", results)
    assert "Done: 1 image saved" in page.locator("#art-progress").inner_text()
    page.locator("#art-gallery img").first.wait_for()
    page.wait_for_function("() => [...document.querySelectorAll('#art-gallery img')].every(i => i.complete)")
    for image in page.evaluate(WHOLE_IMAGES, "#art-gallery"):
        assert image["fit"] == "contain" and image["loaded"], image
        assert image["shown"] == pytest.approx(image["natural"], rel=0.02) and image["fits"], image
    shot(page, f"first_minute_art_{width}")


@pytest.mark.parametrize("width", WIDTHS)
def test_writing_text_uncovered_while_it_streams(page, width: int) -> None:
    sized(page, width)
    open_tab(page, "Writing Assistant")
    page.locator("#writing-premise textarea").fill("a lighthouse keeper finds a message in a bottle")
    page.locator("#writing-write").click()
    results = watch_preview(
        page,
        f"writing_{width}",
        "#writing-output",
        "textarea",
        "() => document.querySelector('#writing-output textarea')?.value.length || 0",
        "() => /Done|Stopped/.test(document.querySelector('#writing-stats')?.innerText || '')",
    )
    assert_mostly_uncovered("writing", results)
    assert "Device plan" not in page.locator("body").inner_text()  # the plan lives in Settings
    assert "Running on this computer's CPU" in page.locator("body").inner_text()


@pytest.mark.parametrize("width", WIDTHS)
def test_music_bar_progress_and_loud_enough_wav(page, width: int) -> None:
    sized(page, width)
    open_tab(page, "Music")
    page.locator("#music-bars input").fill("8")
    page.locator("#music-compose-btn").click()
    labels: list[str] = []
    results = watch_preview(
        page,
        f"music_{width}",
        "#music-pianoroll",
        None,
        "() => document.querySelector('#music-progress')?.innerText || ''",
        "() => (document.querySelector('#music-info')?.innerText || '').includes('saved as #')",
        labels,
    )
    page.wait_for_function("() => document.querySelector('#music-progress')?.innerText.includes('Done')")
    labels.append(page.locator("#music-progress").inner_text())
    assert_mostly_uncovered("music", results)
    # the job's progress: "Bar k/8 · composing", bounded by the total, with a bar
    bars = [re.search(r"Bar (\d+)/(\d+)", text) for text in labels]
    counts = [(int(m[1]), int(m[2])) for m in bars if m]
    assert counts and all(done <= total == 8 for done, total in counts), labels
    assert "Done: saved as #" in labels[-1]
    # the rendered WAV, fetched the way the browser gets it: at the standard loudness
    link = page.locator("#music-files a[href*='.wav']").first
    link.wait_for()
    body = page.request.get(link.get_attribute("href")).body()
    samples, rate = sf.read(io.BytesIO(body), always_2d=True)
    from pipelines.music.loudness import integrated_lufs, true_peak_db

    lufs = integrated_lufs(samples.astype(np.float64), rate)
    assert lufs is not None and -16.0 <= lufs <= -14.0, lufs
    assert true_peak_db(samples.astype(np.float64)) <= -1.0
    shot(page, f"first_minute_music_{width}", full_page=False)


@pytest.mark.parametrize("width", WIDTHS)
def test_style_gallery_named_whole_and_preview_uncovered(page, width: int, tmp_path: Path) -> None:
    sized(page, width)
    open_tab(page, "Style Transfer")
    gallery = page.locator("#style-gallery")
    gallery.locator("img").first.wait_for()
    page.wait_for_function(
        "() => [...document.querySelectorAll('#style-gallery img')].every(i => i.complete)"
    )
    images = page.evaluate(WHOLE_IMAGES, "#style-gallery")
    assert len(images) == 26
    for image in images:  # every style in its box: none clipped on the right, none cropped
        assert image["inside"] and image["fits"], image
        assert image["shown"] == pytest.approx(image["natural"], rel=0.02), image
    captions = gallery.locator(".caption-label").all_inner_texts()
    assert "19 · Starry-night swirls" in captions and len(captions) == 26, captions
    shot(page, f"first_minute_style_gallery_{width}", full_page=False)

    content = tmp_path / "content.png"
    Image.open(SAMPLE).convert("RGB").resize((96, 72)).save(content)
    page.locator("#style-content input[type=file]").set_input_files(str(content))
    page.get_by_label("High quality (Gatys · slow)").check()
    page.locator("#style-run-hq").wait_for()
    page.locator("#style-image input[type=file]").set_input_files(str(SAMPLE.parent / "style_19.jpg"))
    for elem_id, value in (
        ("style-iterations", "24"),
        ("style-gatys-size", "64"),
        ("style-preview-every", "2"),
    ):
        set_number(page, elem_id, value)
    page.locator("#style-run-hq").click()
    results = watch_preview(
        page,
        f"style_{width}",
        "#style-compare",
        None,
        "() => [...document.querySelectorAll('#style-compare img')].map(i => i.src).join('|')",
        "() => (document.querySelector('#style-info textarea')?.value || '').includes('Saved to History')",
    )
    assert_mostly_uncovered("style", results)


@pytest.mark.parametrize("width", WIDTHS)
def test_video_preview_uncovered(page, width: int) -> None:
    sized(page, width)
    open_tab(page, "Video")
    page.get_by_role("tab", name="Animate").click()
    page.locator("#video-keyframes textarea").fill("a red circle in a blue sky | 3\nthree yellow stars | 4")
    set_number(page, "video-frames", "4")
    set_number(page, "video-steps", "4")
    page.locator("#video-animate-run").click()
    results = watch_preview(
        page,
        f"video_{width}",
        "#video-animate-preview",
        "img",
        "() => document.querySelector('#video-animate-preview img')?.src || ''",
        "() => (document.querySelector('#video-animate-status textarea')?.value || '').includes('Saved #')",
    )
    assert_mostly_uncovered("video", results)


def test_phone_shows_every_tab_without_a_menu(page) -> None:
    sized(page, 390)

    def visible_tabs() -> dict[str, dict]:
        return page.evaluate(
            """() => Object.fromEntries([...document.querySelectorAll('[role=tab]')]
                 .filter(t => t.checkVisibility())
                 .map(t => { const r = t.getBoundingClientRect();
                             return [t.textContent.trim(), {left: r.left, right: r.right, width: r.width}]; }))"""
        )

    def menus() -> int:
        return page.evaluate(
            "() => [...document.querySelectorAll('.overflow-menu')].filter(m => m.checkVisibility()).length"
        )

    page.wait_for_timeout(500)  # Gradio measures the tab widths after the first paint
    tabs = visible_tabs()
    for name in TOP_TABS:
        assert name in tabs and tabs[name]["left"] >= 0 and tabs[name]["right"] <= 390, (name, tabs)
    assert menus() == 0
    shot(page, "first_minute_phone_tabs", full_page=False)
    open_tab(page, "Music")
    page.wait_for_timeout(500)
    tabs = visible_tabs()
    for name in MUSIC_TABS:
        assert name in tabs and tabs[name]["right"] <= 390, (name, tabs)
    assert menus() == 0
    # the Art model's name is readable: the dropdown's text is not under its arrow
    open_tab(page, "Art Platform")
    overlap = page.evaluate(
        """() => { const input = [...document.querySelectorAll('.wrap-inner input')].find(i => i.checkVisibility());
                   const arrow = input && input.closest('.wrap').querySelector('.icon-wrap');
                   if (!input || !arrow) return null;
                   const cs = getComputedStyle(input), r = input.getBoundingClientRect(), a = arrow.getBoundingClientRect();
                   return r.right - parseFloat(cs.paddingRight) - a.left; }"""
    )
    assert overlap is not None and overlap <= 1, overlap  # the text ends before the arrow starts
    shot(page, "first_minute_phone_art", full_page=True)
