"""Rendering: the sine fallback matches the soundfont render's length."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipelines.music.render import render
from pipelines.music.scores import finish_score
from pipelines.music.tokens import Key


def test_sine_fallback_renders_the_same_length(tmp_path: Path) -> None:
    from pipelines.music.render import render_sine

    score = finish_score([[(0, 4, 60), (4, 4, 64), (8, 8, 67)]], Key(0, "major"), 120, (0,), 1, 90)
    sine, soundfont = render_sine(score), render(score)
    assert sine.duration_s == pytest.approx(soundfont.duration_s) == pytest.approx(3.0)
    assert np.abs(sine.samples).max() == pytest.approx(0.5, abs=1e-3)


def test_a_long_ogg_is_written_in_blocks_without_crashing(tmp_path: Path) -> None:
    """libsndfile 1.2's Vorbis encoder segfaulted on ~2 minutes of stereo in one write (a 64-bar piece).

    Run in a child process: a regression would kill it, not the test session.
    """
    import subprocess
    import sys

    code = (
        "import numpy as np, sys\n"
        "from pipelines.music.render import Audio, write_audio\n"
        "x = (np.random.default_rng(0).random((44100 * 150, 2), dtype=np.float32) - 0.5) * 0.2\n"
        "write_audio(Audio(x, 44100), __import__('pathlib').Path(sys.argv[1]), 'OGG')\n"
    )
    out = tmp_path / "long.ogg"
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert sf.info(str(out)).duration == pytest.approx(150, abs=0.1)
