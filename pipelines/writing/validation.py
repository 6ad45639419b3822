"""Checks on a writing request before any model loads: numbers, lengths, empty inputs."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pipelines.writing.prompts import (
    MAX_INPUT_CHARS,
    MAX_NEW_TOKENS,
    MAX_SECTIONS,
    MAX_TITLES,
    MODES,
    POEM_FORMS,
)
from pipelines.writing.text import parse_outline
from studio.events import UserError
from studio.inputs import MAX_SEED, clean_text, parse_seed

if TYPE_CHECKING:
    from pipelines.writing.pipeline import WritingRequest


# -- validation ----------------------------------------------------------------------------------


def validate(request: WritingRequest, context_length: int | None = None) -> tuple[WritingRequest, list[str]]:
    """Fix what can be fixed (with notices), refuse the rest with UserError a person understands."""
    notices: list[str] = []
    if request.mode not in MODES:
        raise UserError(f"Unknown mode {request.mode!r}. Choose one of: {', '.join(MODES)}.")
    text = clean_text(request.text)
    if not text:
        raise UserError(_EMPTY[request.mode])
    if len(text) > MAX_INPUT_CHARS:
        notices.append(f"Your text was {len(text):,} characters; only the last {MAX_INPUT_CHARS:,} are used.")
        text = text[-MAX_INPUT_CHARS:]
    outline = request.outline
    if request.mode == "article":
        sections = parse_outline(outline, limit=10_000)
        if not sections:
            raise UserError("The outline is empty. Generate an outline first, or write one section per line.")
        if len(sections) > MAX_SECTIONS:
            notices.append(
                f"The outline has {len(sections)} sections; only the first {MAX_SECTIONS} are written."
            )
        outline = "\n".join(sections[:MAX_SECTIONS])
    s = request.sampling
    temperature, top_p, penalty = (
        _number(s.temperature, "Temperature"),
        _number(s.top_p, "Top-p"),
        _number(s.repetition_penalty, "Repetition penalty"),
    )
    if not 0.0 <= temperature <= 2.0:
        raise UserError(f"Temperature must be between 0 (greedy) and 2 (got {temperature}).")
    if not 0.0 < top_p <= 1.0:
        raise UserError(f"Top-p must be in (0, 1] (got {top_p}).")
    if not 0.5 <= penalty <= 2.0:
        raise UserError(f"Repetition penalty must be between 0.5 and 2 (got {penalty}); 1 means none.")
    # clamp max new tokens to [1, MAX_NEW_TOKENS] and to half the model's context
    asked = int(_number(s.max_new_tokens, "Max new tokens"))
    ceiling = MAX_NEW_TOKENS if context_length is None else max(1, min(MAX_NEW_TOKENS, context_length // 2))
    max_new = min(max(asked, 1), ceiling)
    if asked < 1:
        notices.append(f"Max new tokens must be at least 1 (got {asked:,}); using 1.")
    elif max_new != asked:
        limit = (
            f"half of this model's {context_length:,}-token context"
            if context_length and ceiling < MAX_NEW_TOKENS
            else f"the limit of {MAX_NEW_TOKENS:,}"
        )
        notices.append(f"Max new tokens {asked:,} is more than {limit}; using {max_new:,}.")
    seed = parse_seed(s.seed)
    sampling = replace(
        s,
        temperature=temperature,
        top_p=top_p,
        repetition_penalty=penalty,
        max_new_tokens=max_new,
        min_new_tokens=min(max(int(s.min_new_tokens), 0), max_new),
        seed=random.randint(0, MAX_SEED) if seed == -1 else seed,
    )
    cleaned = replace(
        request,
        text=text,
        outline=outline,
        genre=clean_text(request.genre)[:40] or "any",
        tone=clean_text(request.tone)[:60] or "formal",
        form=request.form if request.form in POEM_FORMS else clean_text(request.form)[:60] or "free verse",
        sections=min(max(int(_number(request.sections, "Sections")), 1), MAX_SECTIONS),
        count=min(max(int(_number(request.count, "Titles")), 1), MAX_TITLES),
        sampling=sampling,
    )
    return cleaned, notices


_EMPTY = {
    "story": "The premise is empty. Give the story a starting idea, e.g. 'a lighthouse keeper finds a message in a bottle'.",
    "poem": "The theme is empty. Say what the poem is about, e.g. 'autumn rain'.",
    "continue": "There is no text to continue. Paste or write the beginning first.",
    "outline": "The topic is empty. Say what the article is about.",
    "article": "The topic is empty. Say what the article is about.",
    "rewrite": "There is no text to rewrite. Paste the text first.",
    "titles": "The topic is empty. Describe what the titles are for.",
}


def _number(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number (got {str(value)[:40]!r}).") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise UserError(f"{name} must be a finite number.")
    return number
