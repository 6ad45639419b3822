"""The Settings panel's disk section in a real browser: sizes, model caches, pinning a result."""

from __future__ import annotations

from tests.browser.conftest import shot


def test_disk_panel_shows_sizes_and_pins_a_result(page, launched_app) -> None:
    store = launched_app.ctx.store
    path = store.write("writing", ".md", lambda p: p.write_text("# pin me\n"))
    record = store.record("writing", "pin me", {}, [path])
    page.get_by_text("Settings and device plan").click()
    page.get_by_text("Upload cache:").wait_for()
    page.get_by_role("button", name="Refresh disk usage").click()
    page.get_by_text("Model caches (rebuilt on next use when cleared)").wait_for()
    page.get_by_label("Result # (shown in History)").fill(str(record.id))
    page.get_by_role("button", name="Pin / unpin").click()
    page.get_by_text(f"Result #{record.id} is pinned.").wait_for()
    assert store.get(record.id).pinned
    text = page.locator("gradio-app").inner_text()
    assert "results kept" in text and "pinned results always kept" in text
    page.get_by_text("Upload cache:").scroll_into_view_if_needed()
    shot(page, "settings_disk_panel", full_page=False)
