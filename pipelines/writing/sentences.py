"""Stories end on a sentence boundary: stop at the first sentence end past the length, or trim to one.

A story's length is a token budget (`max_new_tokens`), and a budget alone cuts a story wherever it
runs out ("…to the other side, and"). So for the modes in SENTENCE_MODES:

1. generation may run past the budget by OVERSHOOT (a quarter) to `hard_cap(budget)` tokens;
2. once the budget is reached, it stops at the first sentence end (". ! ? …" and any closing quotes
   or brackets) that is followed by white space, i.e. on the token after the end mark, so a closing
   quote that comes as its own token is kept; that one token (a space, a newline, or the next
   sentence's first word) is trimmed off silently. The check runs after every token on both
   backends (a StoppingCriteria for transformers, the token callback for llama.cpp; streaming.py);
3. if the hard cap comes first, the text is trimmed to its last complete sentence and the result
   says so (`ending_notice`); a text with no complete sentence is kept as it is, never emptied.

An EOS before the budget is the model's own ending and is left alone, and so is a stopped job.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

SENTENCE_MODES = frozenset({"story"})  # modes whose length preset must end on a full sentence
OVERSHOOT = 0.25  # extra tokens allowed past the budget to reach a sentence end, as a fraction
TAIL_TOKENS = 12  # tokens decoded from the end to look for a sentence end (enough for one word + marks)
TRIMMED_NOTICE = "Trimmed to the last full sentence: the story reached its length limit mid-sentence."
UNTRIMMED_NOTICE = "The story reached its length limit mid-sentence, with no full sentence to trim to."

_CLOSERS = "\"'”’)]»"
_C = re.escape(_CLOSERS)  # as a character class body
_END = re.compile(rf"[.!?…]+[{_C}]*$")  # a sentence end at the very end of the text
_ENDED = re.compile(rf"[.!?…]+[{_C}]*(?=\s+\S*$)")  # a sentence end, then one token's worth
_BOUNDARY = re.compile(rf"[.!?…]+[{_C}]*(?=\s|$)")  # every sentence end followed by a space or the end
_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "st", "mt", "jr", "sr", "vs", "prof", "capt", "lt"})


def _is_abbreviation(text: str, end: int) -> bool:
    """Whether the '.' just before `end` belongs to 'Mr.', 'Dr.', an initial 'J.' and the like."""
    match = re.search(r"(\w+)\.$", text[:end])
    if not match:
        return False
    word = match.group(1)
    return word.lower() in _ABBREVIATIONS or (len(word) == 1 and word.isalpha() and word.isupper())


def ends_sentence(text: str) -> bool:
    """True when the text (trailing spaces aside) ends with a sentence end mark."""
    text = text.rstrip()
    match = _END.search(text)
    if not match:
        return False
    marks = match.group(0).rstrip(_CLOSERS)
    return not (marks == "." and _is_abbreviation(text, match.start() + 1))


def trim_to_sentence(text: str) -> tuple[str, bool]:
    """(text up to its last complete sentence, whether anything was cut); never returns an empty text."""
    text = text.rstrip()
    if ends_sentence(text):
        return text, False
    for match in reversed(list(_BOUNDARY.finditer(text))):
        marks = match.group(0).rstrip(_CLOSERS)
        if marks == "." and _is_abbreviation(text, match.start() + 1):
            continue
        kept = text[: match.end()].rstrip()
        if kept:
            return kept, True
    return text, False


def hard_cap(mode: str, budget: int) -> int:
    """Tokens a generation may use: the budget, plus the overshoot for sentence-ending modes."""
    return budget + int(budget * OVERSHOOT) if mode in SENTENCE_MODES else budget


def sentence_ended(text: str) -> bool:
    """True when a sentence end is followed by white space and at most one word (the newest token)."""
    match = _ENDED.search(text)
    if not match:
        return False
    marks = match.group(0).rstrip(_CLOSERS)
    return not (marks == "." and _is_abbreviation(text, match.start() + 1))


class SentenceStop:
    """Called with the new ids after every token: True once the budget is written and a sentence ended.

    The stop test for both backends; `fired` remembers that it ended the generation.
    """

    def __init__(self, tokenizer: Any, budget: int) -> None:
        self.tokenizer = tokenizer
        self.budget = budget  # new tokens to write before a sentence end may stop generation
        self.fired = False

    def __call__(self, ids: Sequence[int]) -> bool:
        if len(ids) <= self.budget:  # the end mark may be the budget's last token; its follower stops
            return False
        tail = self.tokenizer.decode(list(ids[-TAIL_TOKENS:]), skip_special_tokens=True)
        self.fired = self.fired or sentence_ended(tail)
        return self.fired


def finish_text(text: str, tokens: int, cap: int, stop: SentenceStop, cancelled: bool) -> tuple[str, str]:
    """(final text, notice for the user or "") once a sentence-ending generation is over."""
    if cancelled:
        return text, ""  # the user's Stop: their partial text, as it stands
    if stop.fired:  # stopped on the token after a sentence end: drop that token
        return trim_to_sentence(text)[0], ""
    if tokens < cap or ends_sentence(text):
        return text, ""  # the model's own EOS, or the cap landed on a sentence end
    trimmed, cut = trim_to_sentence(text)
    return trimmed, TRIMMED_NOTICE if cut else UNTRIMMED_NOTICE
