"""Writing request checks: each field is capped at a length that suits it, with a notice, before any work."""

from __future__ import annotations

from pipelines.writing.pipeline import SamplingParams, WritingRequest
from pipelines.writing.prompts import MAX_INPUT_BYTES
from pipelines.writing.validation import cap_text, validate


def test_a_200000_letter_premise_is_cut_to_a_few_sentences_with_a_notice() -> None:
    request = WritingRequest("story", "a" * 200_000, sampling=SamplingParams(seed=1))
    cleaned, notices = validate(request)
    assert len(cleaned.text.encode()) <= MAX_INPUT_BYTES["story"] and cleaned.text.startswith("aaa")
    assert any("premise was 200,000 characters long; only its first" in n for n in notices), notices


def test_5000_emoji_count_by_their_bytes() -> None:
    cleaned, notices = validate(WritingRequest("poem", "🌧" * 5_000, sampling=SamplingParams(seed=1)))
    assert len(cleaned.text) == MAX_INPUT_BYTES["poem"] // 4 and set(cleaned.text) == {"🌧"}
    assert any("theme was 5,000 characters long" in n for n in notices), notices


def test_continue_keeps_the_end_and_rewrite_the_beginning() -> None:
    text = "start " + "middle " * 5_000 + "the very end"
    kept, notice = cap_text(text, "continue")
    assert kept.endswith("the very end") and "last" in notice
    kept, notice = cap_text(text, "rewrite")
    assert kept.startswith("start") and "first" in notice


def test_short_text_passes_untouched() -> None:
    assert cap_text("a lighthouse keeper", "story") == ("a lighthouse keeper", "")
