"""Every one of the 26 styles has a readable name, shown as "19 · Starry-night swirls"."""

from __future__ import annotations

import pytest

from pipelines.style import NUM_STYLES, STYLE_NAMES, style_label


def test_every_style_has_a_distinct_readable_name() -> None:
    assert len(STYLE_NAMES) == NUM_STYLES == 26
    assert len(set(STYLE_NAMES)) == NUM_STYLES, "two styles share a name"
    for name in STYLE_NAMES:
        assert name.strip() == name and 3 <= len(name) <= 28, name  # fits a caption and a dropdown
        assert not name.lower().startswith("style"), name  # a name, not a number


def test_label_is_number_then_name() -> None:
    assert style_label(19) == "19 · Starry-night swirls"
    assert style_label(0).startswith("0 · ")
    assert [style_label(k).split(" · ")[0] for k in range(NUM_STYLES)] == [str(k) for k in range(NUM_STYLES)]


@pytest.mark.parametrize("bad", [-1, NUM_STYLES])
def test_label_out_of_range(bad: int) -> None:
    with pytest.raises(ValueError):
        style_label(bad)
