"""What a small embedded art model knows: its subjects and styles, from `vocabulary.json` in its folder.

A model trained by this project draws only what its data showed it. The vocabulary lets the UI say
so (a short list of subjects and styles, and example prompts), and lets the pipeline add a notice
when a prompt names nothing the model knows; the image is still drawn.

    {"model": "art-offline 2.0", "styles": ["flat twemoji style", ...],
     "categories": {"food and drink": ["red apple", ...], ...}, "examples": ["a red apple, ..."]}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

FILENAME = "vocabulary.json"
# words that say nothing about the subject: a prompt made only of these is not "unknown"
_FILLER = {"a", "an", "the", "of", "in", "on", "at", "with", "and", "style", "emoji", "picture", "image"}


@dataclass(frozen=True)
class Vocabulary:
    model: str  # e.g. "art-offline 2.0"
    styles: tuple[str, ...]
    categories: dict[str, tuple[str, ...]]  # category -> subjects, most typical first
    examples: tuple[str, ...] = ()  # prompts that show the model at its best
    words: frozenset[str] = field(default=frozenset(), repr=False)  # every word of every subject/style

    @property
    def n_subjects(self) -> int:
        return sum(len(subjects) for subjects in self.categories.values())

    def knows(self, prompt: str) -> bool:
        """True when the prompt names at least one word of a known subject or style (or says nothing)."""
        wanted = set(_words(prompt)) - _FILLER
        return not wanted or bool(wanted & self.words)

    def summary(self, per_category: int = 6) -> str:
        """Markdown for the UI: styles, then a few subjects per category."""
        n_styles = len(self.styles)
        lines = [
            f"**{self.model}** knows {self.n_subjects:,} subjects in {n_styles} style{'s' * (n_styles != 1)}.",
            "",
            "Styles: " + ", ".join(f"*{s}*" for s in self.styles),
            "",
        ]
        for category, subjects in self.categories.items():
            more = len(subjects) - per_category
            tail = f" … and {more:,} more" if more > 0 else ""
            lines.append(f"- **{category}**: {', '.join(subjects[:per_category])}{tail}")
        if self.examples:  # a paragraph of its own, not a continuation of the last bullet
            lines += ["", "Try: " + " · ".join(f"`{e}`" for e in self.examples[:4])]
        return "\n".join(lines)

    def unknown_notice(self, prompt: str) -> str:
        """The notice for a prompt the model has no word for (empty when it knows one)."""
        if self.knows(prompt):
            return ""
        some = [subjects[0] for subjects in self.categories.values() if subjects][:5]
        return (
            f"{self.model} was trained on a fixed set of subjects and did not see anything named in this "
            f"prompt, so the picture will only loosely follow it. It knows, e.g.: {', '.join(some)} "
            f"(see 'What the offline model knows')."
        )


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def vocabulary_from_dict(data: dict) -> Vocabulary:
    categories = {str(k): tuple(str(s) for s in v) for k, v in data.get("categories", {}).items()}
    styles = tuple(str(s) for s in data.get("styles", ()))
    words = {w for text in [*styles, *(s for v in categories.values() for s in v)] for w in _words(text)}
    return Vocabulary(
        model=str(data.get("model", "the embedded model")),
        styles=styles,
        categories=categories,
        examples=tuple(str(e) for e in data.get("examples", ())),
        words=frozenset(words - _FILLER),
    )


def load_vocabulary(folder: str | Path) -> Vocabulary | None:
    """The folder's vocabulary, or None when it has none (hub models know everything, as far as we know)."""
    path = Path(folder) / FILENAME
    if not path.is_file():
        return None
    return vocabulary_from_dict(json.loads(path.read_text(encoding="utf-8")))


def save_vocabulary(folder: str | Path, vocabulary: dict) -> Path:
    """Write a vocabulary dict (as `load_vocabulary` reads it) into a model folder."""
    path = Path(folder) / FILENAME
    path.write_text(json.dumps(vocabulary, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
