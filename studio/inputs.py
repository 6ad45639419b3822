"""Input hygiene shared by every pipeline: seeds and user text."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from studio.events import UserError

MAX_SEED = 2**32 - 1

# control characters (but \t, \n), lone surrogates, private use, bidi overrides/isolates (they can
# reorder what a reader sees), zero-width spaces, direction marks and BOMs; one C-level regex pass,
# cheap enough to run on every streamed snapshot
_UNWANTED = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ue000-\uf8ff\U000f0000-\U0010ffff"
    "\u202a-\u202e\u2066-\u2069\u200b\u200e\u200f\u2060\ufeff]"
)


def parse_seed(value: Any) -> int:
    """-1/blank = random; else an integer in [0, 2**32-1]; anything else is a UserError."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return -1
    try:
        seed = int(value.strip()) if isinstance(value, str) else int(float(value))
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"Seed must be a whole number (or -1 for random), not {str(value)[:40]!r}.") from None
    if seed < -1 or seed > MAX_SEED:
        raise UserError(f"Seed must be between 0 and {MAX_SEED}, or -1 for random.")
    return seed


def clean_text(text: str | None) -> str:
    """NFC-normalise; drop control, surrogate, private-use, bidi-override and invisible characters; keep \\n, \\t."""
    return clean_chars(text).strip()


def clean_chars(text: str | None) -> str:
    """clean_text without the strip (a continuation's leading space matters)."""
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    text = _UNWANTED.sub("", text)  # before NFC: a lone surrogate would make normalisation fail
    return re.sub(r"\n{4,}", "\n\n\n", unicodedata.normalize("NFC", text))
