"""Rendering: the sine fallback matches the soundfont render's length."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.music.render import render
from pipelines.music.scores import finish_score
from pipelines.music.tokens import Key


def test_sine_fallback_renders_the_same_length(tmp_path: Path) -> None:
    from pipelines.music.render import render_sine

    score = finish_score([[(0, 4, 60), (4, 4, 64), (8, 8, 67)]], Key(0, "major"), 120, (0,), 1, 90)
    sine, soundfont = render_sine(score), render(score)
    assert sine.duration_s == pytest.approx(soundfont.duration_s) == pytest.approx(3.0)
    assert np.abs(sine.samples).max() == pytest.approx(0.5, abs=1e-3)
