"""Playwright: the Video tab animates with live previews and the MP4 plays in Chromium; the
Art → Style → Video chain with a Music soundtrack works without downloading anything."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from imageio_ffmpeg import get_ffmpeg_exe

from tests.browser.conftest import open_tab, shot

pytestmark = pytest.mark.browser

PLAYS = "el => el && el.readyState >= 2 && el.videoWidth > 0"


def set_number(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(value)
    box.press("Enter")


def wait_status(page, elem_id: str, text: str, timeout: int = 120_000) -> str:
    page.wait_for_function(
        f"() => (document.querySelector('#{elem_id} textarea')?.value || '').includes('{text}')",
        timeout=timeout,
    )
    return page.locator(f"#{elem_id} textarea").input_value()


def wait_playable(page, elem_id: str) -> None:
    video = page.locator(f"#{elem_id} video").first
    video.wait_for(timeout=30_000)
    page.wait_for_function(
        f"() => {{ const v = document.querySelector('#{elem_id} video'); return v && v.readyState >= 2 && v.videoWidth > 0; }}",
        timeout=30_000,
    )
    assert video.evaluate(PLAYS)


def test_animate_previews_and_the_mp4_plays(page) -> None:
    open_tab(page, "Video")
    page.get_by_role("tab", name="Animate").click()
    page.locator("#video-keyframes textarea").fill(
        "a red circle in a blue sky | 3\nthree yellow stars at sunset | 4"
    )
    set_number(page, "video-frames", "6")
    set_number(page, "video-steps", "3")
    page.locator("#video-animate-run").click()
    # the preview shows frames while the job runs, then the result player appears
    page.locator("#video-animate-preview img").first.wait_for(timeout=60_000)
    status = wait_status(page, "video-animate-status", "Saved #")
    assert "6 frames" in status, status
    wait_playable(page, "video-animate-result")
    shot(page, "video_tab_animate", full_page=False)


def test_stylize_a_clip_plays(page, tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    subprocess.run(
        [
            get_ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=96x64:rate=8:duration=1",
            "-f", "lavfi", "-i", "sine=frequency=330:duration=1", "-c:v", "libx264", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-shortest", str(clip),
        ],
        check=True,
    )  # fmt: skip
    open_tab(page, "Video")
    page.locator("#video-clip input[type=file]").set_input_files(str(clip))
    page.locator("#video-clip video").first.wait_for(timeout=30_000)
    page.locator("#video-stylize-run").click()
    status = wait_status(page, "video-stylize-status", "Saved #")
    assert "8 frames" in status and "clip audio" in status, status
    wait_playable(page, "video-stylize-result")
    shot(page, "video_tab_stylize", full_page=False)


def test_art_style_music_chain_into_video(page) -> None:
    # 1. Art: an image, sent to Video as a keyframe (its prompt and seed)
    open_tab(page, "Art Platform")
    page.get_by_label("Prompt", exact=True).fill("a red circle on a blue background")
    set_number(page, "art-steps", "2")
    page.get_by_role("button", name="Generate", exact=True).click()
    page.wait_for_function(
        "() => (document.querySelector('#art-info textarea')?.value || '').includes('Seed:')", timeout=60_000
    )
    seed = page.locator("#art-info textarea").input_value().split("Seed: ")[1].split(",")[0]
    page.locator("#art-to-video").click()
    page.wait_for_function(
        "() => (document.querySelector('#video-keyframes textarea')?.value || '').includes('blue background |')",
        timeout=20_000,
    )
    assert page.get_by_role("tab", name="Video", exact=True).get_attribute("aria-selected") == "true"
    keys = page.locator("#video-keyframes textarea")
    assert keys.input_value() == f"a red circle on a blue background | {seed}"
    keys.fill(keys.input_value() + "\n| 99")  # a second keyframe: same prompt, another seed
    # 2. Style: the current style goes to Video and switches on "Style every frame"
    open_tab(page, "Style Transfer")
    page.locator("#style-to-video").click()
    page.wait_for_function(
        "() => document.querySelector('#video-animate-style input')?.checked === true", timeout=20_000
    )
    # 3. Music: compose, then send the piece to Video as the soundtrack
    open_tab(page, "Music")
    page.get_by_role("tab", name="Compose").click()
    page.locator("#music-bars input").fill("2")
    page.locator("#music-compose-btn").click()
    page.wait_for_selector("#music-player audio[src], #music-player .waveform-container", timeout=60_000)
    page.locator("#music-to-video").click()
    page.locator("#video-keyframes textarea").wait_for(timeout=20_000)  # back on Video › Animate
    page.get_by_text("Soundtrack", exact=True).click()  # open the accordion
    page.locator("#video-sound-source").wait_for(timeout=20_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#video-sound-source input')]"
        ".some(i => i.checked && (i.closest('label')?.innerText || '').includes('audio file'))",
        timeout=20_000,
    )
    # 4. Video: animate with style and soundtrack; the MP4 plays with its sound
    set_number(page, "video-frames", "4")
    set_number(page, "video-steps", "2")
    page.locator("#video-animate-run").click()
    status = wait_status(page, "video-animate-status", "Saved #")
    assert "sound:" in status, status
    wait_playable(page, "video-animate-result")
    shot(page, "video_tab_chain", full_page=True)
