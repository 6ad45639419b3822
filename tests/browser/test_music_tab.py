"""Playwright: compose a chorale in the Music tab; the player and the pianoroll appear."""

from __future__ import annotations

import pytest

from tests.browser.conftest import open_tab, shot

pytestmark = pytest.mark.browser


def test_compose_shows_player_and_pianoroll(page) -> None:
    open_tab(page, "Music")
    page.get_by_role("tab", name="Compose").click()
    bars = page.locator("#music-bars input")
    bars.fill("4")
    page.locator("#music-compose-btn").click()

    # 1. the player gets an audio source, the pianoroll an image, the info line the summary
    page.wait_for_selector(
        "#music-player audio[src], #music-player .waveform-container, #music-player wave", timeout=60_000
    )
    roll = page.locator("#music-pianoroll img")
    roll.wait_for(timeout=30_000)
    assert roll.evaluate("img => img.complete && img.naturalWidth > 300")
    info = page.locator("#music-info").inner_text()
    assert "chorale in C major" in info and "4 bars" in info
    assert page.locator("#music-files").get_by_text(".mid").count() >= 1
    shot(page, "music_tab_composed")
