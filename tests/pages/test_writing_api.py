"""gradio_client against the launched app's Writing Assistant: streaming, the article flow, Stop, export."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from gradio_client.exceptions import AppError

from pipelines.writing.models import DEBUG_ID

GENERATE = "/writing_generate"
SAMPLING = {"temperature": 0.0, "top_p": 0.95, "tokens": 200, "penalty": 1.1, "seed": "5"}


def args(mode: str = "story", text: str = "a lighthouse keeper", **kw) -> list:
    """Positional inputs of /writing_generate; the text goes to the mode's own box."""
    boxes = {"story": 0, "poem": 1, "continue": 2, "rewrite": 3, "titles": 4}
    texts = ["", "", "", "", ""]
    if mode in boxes:
        texts[boxes[mode]] = text
    s = {**SAMPLING, **kw}
    return [
        kw.get("model", DEBUG_ID), mode, texts[0], "any", "short", texts[1], "haiku", texts[2], texts[3],
        "formal", texts[4], 8, s["temperature"], s["top_p"], s["tokens"], s["penalty"], s["seed"],
    ]  # fmt: skip


def sampling(**kw) -> list:
    s = {**SAMPLING, **kw}
    return [s["temperature"], s["top_p"], s["tokens"], s["penalty"], s["seed"]]


def test_text_streams_as_growing_snapshots(client) -> None:
    # a poem: a story may run past max tokens to end its sentence, then end on a trimmed snapshot
    job = client.submit(*args("poem", "autumn rain on a tin roof", tokens=400), api_name=GENERATE)
    while not job.done():
        time.sleep(0.02)
    updates = [text for text, _stats in job.outputs() if text]
    final_text, final_stats = job.result()
    assert len(updates) >= 3, f"only {len(updates)} text updates"
    assert all(len(a) <= len(b) for a, b in zip(updates, updates[1:], strict=False))  # snapshots, not deltas
    assert updates[-1] == final_text
    assert re.search(r"400 tokens .*?[\d.]+ tokens/s.* saved as #\d+", final_stats), final_stats


def test_every_mode_runs(client) -> None:
    for mode in ("poem", "continue", "rewrite", "titles"):
        text, stats = client.predict(*args(mode, "autumn rain on a tin roof", tokens=20), api_name=GENERATE)
        assert text and "**Done:**" in stats, (mode, stats)
    _, stats = client.predict(*args("continue", "Start here", tokens=20), api_name=GENERATE)
    assert "20 tokens" in stats


def test_outline_then_article_one_section_per_line(client) -> None:
    outline, stats = client.predict(
        DEBUG_ID, "urban gardening", 3, *sampling(tokens=30), api_name="/writing_outline"
    )
    assert "Done" in stats
    edited = "Why grow food in cities\nSmall spaces\nSoil and light"  # the user edits the outline
    article, stats = client.predict(
        DEBUG_ID, "urban gardening", edited, True, *sampling(tokens=15), api_name="/writing_article"
    )
    headings = [line[3:] for line in article.splitlines() if line.startswith("## ")]
    assert headings == edited.splitlines() and article.startswith("# urban gardening")
    assert "60 tokens" in stats  # 3 sections + the polish pass, 15 tokens each


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (args(text=""), "premise is empty"),
        (args(text="\x00\x07 \u202e"), "premise is empty"),
        (args(mode="article"), "Generate outline"),
        (args(temperature=9), "Temperature|greater than maximum"),  # gradio's slider bounds may speak first
        (args(seed="banana"), "Seed"),
        (args(tokens="lots"), "Max new tokens|number"),
    ],
)
def test_bad_input_gets_a_clear_error(client, call: list, message: str) -> None:
    with pytest.raises(AppError, match=message):
        client.predict(*call, api_name=GENERATE)


def test_max_tokens_are_clamped_not_refused(client) -> None:
    _, stats = client.predict(*args(tokens=0), api_name=GENERATE)
    assert "1 tokens" in stats


def test_empty_article_outline_is_refused(client) -> None:
    with pytest.raises(AppError, match="outline is empty"):
        client.predict(DEBUG_ID, "bees", " \n - \n", True, *sampling(), api_name="/writing_article")


def test_stop_twice_and_stop_when_idle_are_harmless(client) -> None:
    client.predict(api_name="/writing_stop")
    job = client.submit(*args(tokens=2000), api_name=GENERATE)
    time.sleep(1.0)
    client.predict(api_name="/writing_stop")
    client.predict(api_name="/writing_stop")
    try:
        job.result(timeout=60)
    except Exception:  # noqa: BLE001 - a cancelled job may end either way; serving is what matters
        pass
    _, stats = client.predict(*args("poem", "autumn rain", tokens=5), api_name=GENERATE)
    assert "5 tokens" in stats


def test_export_and_history(client) -> None:
    text, _ = client.predict(*args("titles", "a blog about bees", tokens=20), api_name=GENERATE)
    exported = Path(client.predict(text + "\n\nEdited by hand.", api_name="/writing_export"))
    assert exported.suffix == ".md" and exported.read_text(encoding="utf-8").rstrip().endswith(
        "Edited by hand."
    )
    history = client.predict(api_name="/writing_history")
    titles = [row[2] for row in history["data"]]
    assert any("a blog about bees" in title for title in titles), titles
    with pytest.raises(AppError, match="no text to export"):
        client.predict("   ", api_name="/writing_export")
