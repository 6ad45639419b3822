"""Text hygiene: tidy model output, parse outlines and titles, polish and assemble an article."""

from __future__ import annotations

import re
from collections.abc import Callable

from pipelines.writing.prompts import MAX_SECTIONS, MAX_TITLES
from studio.inputs import clean_chars, clean_text

# -- text hygiene --------------------------------------------------------------------------------


def tidy_output(text: str) -> str:
    """Model output as shown and saved: the same hygiene as input (previews and results must agree)."""
    return clean_text(text)


def continuation_renderer(prefix: str) -> Callable[[str], str]:
    """Continue mode shows your text + the raw continuation (its own leading space decides the join)."""
    return lambda text: (prefix + clean_chars(text)).rstrip()


_LIST_MARKER = re.compile(r"^\s*(?:#{1,6}\s*|[-*•+]\s+|\(?(?:\d{1,3}|[ivxlcIVXLC]{1,6}|[a-zA-Z])[.)]\s+)")


def strip_list_marker(line: str) -> str:
    """'## 2. **Intro**' -> 'Intro': markdown heading marks, bullets, numbering and bold."""
    previous = None
    while previous != line:
        previous, line = line, _LIST_MARKER.sub("", line).strip()
    line = line.strip("*_<>[] ").strip()
    return line if any(c.isalnum() for c in line) else ""  # a lone "-" or "**" is not a heading


def parse_outline(text: str, limit: int = MAX_SECTIONS) -> list[str]:
    """One section per non-empty line, list markers removed; a trailing colon line is a preamble."""
    sections = []
    for raw in clean_text(text).splitlines():
        line = strip_list_marker(raw)
        if not line or (not sections and line.endswith(":") and "outline" in line.lower()):
            continue
        sections.append(line)
    return sections[:limit]


def parse_titles(text: str, limit: int = MAX_TITLES) -> list[str]:
    """Lines -> distinct titles, without numbering or quotes."""
    titles: list[str] = []
    for raw in clean_text(text).splitlines():
        title = strip_list_marker(raw).strip("\"'“”‘’ ")
        if title and title.lower() not in {t.lower() for t in titles}:
            titles.append(title)
    return titles[:limit]


_SENTENCE = re.compile(r"[^.!?…]+(?:[.!?…]+[\"'”’)\]]*|$)\s*", re.S)


_PLACEHOLDER = re.compile(r"^\s*(?:\[[^\]]*\]|<<[^>]*>>|#{1,6}\s.*)\s*$")


def polish_text(text: str, headings: list[str] | tuple[str, ...] = ()) -> str:
    """Deterministic clean-up of a section: drop echoed headings, placeholders like '[Insert…]' and
    repeated sentences, and cut a last sentence the token limit cut off."""
    echoes = {strip_list_marker(h).lower() for h in headings}
    lines = [
        line
        for line in text.strip().splitlines()
        if not _PLACEHOLDER.match(line) and strip_list_marker(line).lower() not in echoes
    ]
    paragraphs = []
    seen: set[str] = set()
    for paragraph in re.split(r"\n\s*\n", "\n".join(lines).strip()):
        sentences = []
        for sentence in _SENTENCE.findall(paragraph):
            key = re.sub(r"\W+", " ", sentence).strip().lower()
            if key and key in seen:
                continue  # small models loop: keep the first occurrence only
            seen.add(key)
            sentences.append(sentence)
        if sentences:
            paragraphs.append("".join(sentences).strip())
    polished = "\n\n".join(p for p in paragraphs if p)
    # a last sentence with no end mark was cut by max tokens: drop it when something remains
    last_end = max(polished.rfind(mark) for mark in ".!?…")
    if 0 < last_end < len(polished) - 1 and not polished.rstrip().endswith((".", "!", "?", "…", '"', "”")):
        polished = polished[: last_end + 1]
    return polished.strip()


def render_article(topic: str, intro: str, sections: list[tuple[str, str]]) -> str:
    """Markdown: the topic as title, the introduction, then one '##' section per outline line."""
    parts = [f"# {topic[:120]}"]
    if intro:
        parts.append(intro)
    parts.extend(f"## {heading}\n\n{body}".rstrip() for heading, body in sections)
    return "\n\n".join(parts)
