"""Playwright: the Writing tab streams a story from the embedded SmolLM2, shows tokens/s and the backend, and stops."""

from __future__ import annotations

import re
import time

import pytest

from tests.browser.conftest import open_tab, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # real SmolLM2 (converted once per data dir)


def output_text(page) -> str:
    return page.locator("#writing-output textarea").input_value()


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def test_story_streams_then_stops(page) -> None:
    open_tab(page, "Writing Assistant")
    # the embedded default, chosen explicitly (the test app may default to the debug model)
    page.locator("#writing-model input").click()
    page.get_by_role("option", name=re.compile("SmolLM2 135M")).click()
    page.locator("#writing-premise textarea").fill("a lighthouse keeper finds a message in a bottle")
    page.locator("#writing-sampling").get_by_role("button", name=re.compile("Sampling")).click()
    page.locator("#writing-max-tokens input").fill("1500")
    page.locator("#writing-write").click()

    # 1. text appears (the first use may convert the GGUF: up to a minute), then keeps growing
    wait_for(lambda: len(output_text(page)) > 0, 120, "the first streamed text")
    first = len(output_text(page))
    wait_for(lambda: len(output_text(page)) > first + 20, 30, "the text to grow")
    wait_for(lambda: len(output_text(page)) > 300, 60, "a paragraph")  # for a telling screenshot
    stats = page.locator("#writing-stats").inner_text()
    assert re.search(r"\d+ tokens · [\d.]+ tokens/s", stats), stats
    # the tab says which backend runs: llama.cpp when it imports here, else transformers
    from pipelines.writing.engine import engine_status

    backend = "llama.cpp" if engine_status()[0] else "transformers"
    assert f"Writing engine: {backend}" in page.locator("#writing-backend").inner_text()
    assert backend in stats, stats

    # 2. Stop: the text stops growing long before 1500 tokens
    page.locator("#writing-stop").click()
    time.sleep(1.5)
    stopped = output_text(page)
    time.sleep(1.5)
    assert output_text(page) == stopped, "text kept growing after Stop"
    assert len(stopped.split()) < 1000
    assert "Stopped" in page.locator("#writing-stats").inner_text()
    shot(page, "writing_tab_stopped")

    # 3. the stopped text was saved: it is listed in the History, and exports as Markdown
    page.locator("#writing-history-box").get_by_role("button", name=re.compile("History")).click()
    history = page.locator("#writing-history")
    wait_for(lambda: "lighthouse keeper" in history.inner_text(), 30, "the saved story in the History")
    history.get_by_text("Story: a lighthouse keeper").filter(
        visible=True
    ).first.click()  # open the saved text
    opened = page.locator("#writing-history-text")
    wait_for(lambda: stopped[:40] in opened.inner_text(), 15, "the saved text to open")
    page.get_by_role("button", name="Export Markdown").click()
    page.locator("#writing-export").get_by_text(re.compile(r"\.md")).wait_for()
    shot(page, "writing_tab_history")


def test_short_story_ends_on_a_sentence(page) -> None:
    """A "short" story ends with sentence punctuation (it runs on to the sentence end or is trimmed,
    and the stats line says so); issue 16."""
    open_tab(page, "Writing Assistant")
    page.locator("#writing-model input").click()
    page.get_by_role("option", name=re.compile("SmolLM2 135M")).click()
    page.locator("#writing-premise textarea").fill("a fox who wants to learn to sing")
    page.get_by_label("short", exact=True).check()
    page.locator("#writing-sampling").get_by_role("button", name=re.compile("Sampling")).click()
    page.locator("#writing-max-tokens input").fill("60")  # a small budget: the cap falls mid-sentence
    page.locator("#writing-write").click()
    wait_for(lambda: "Done" in page.locator("#writing-stats").inner_text(), 150, "the story to finish")
    text = output_text(page).rstrip()
    assert text and re.search(r"[.!?…][\"'”’)\]]*$", text), text[-80:]
    shot(page, "writing_tab_short_story", full_page=False)
