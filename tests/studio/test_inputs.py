from __future__ import annotations

import pytest

from studio.events import UserError
from studio.inputs import MAX_SEED, clean_chars, clean_text, parse_seed


def test_seeds() -> None:
    assert parse_seed("42") == 42 and parse_seed(" 7 ") == 7 and parse_seed(3.0) == 3
    assert parse_seed("") == -1 and parse_seed(None) == -1 and parse_seed(MAX_SEED) == MAX_SEED
    for bad in ["abc", "1.5", "-7", str(MAX_SEED + 1), float("inf")]:
        with pytest.raises(UserError, match="Seed"):
            parse_seed(bad)


def test_text_hygiene() -> None:
    assert clean_text("  a\x00b\u202ec\ufeff\r\nd  ") == "abc\nd"
    assert clean_text("e\u0301") == "\u00e9"  # NFC
    assert clean_chars(" lead") == " lead" and clean_text("\ud800x") == "x"
