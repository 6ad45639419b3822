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


def test_the_shared_synth_renders_every_piece_as_a_fresh_one_would() -> None:
    """The soundfont is parsed once and the synth reused: no note or program leaks between renders."""
    import tinysoundfont

    from pipelines.music.render import SAMPLE_RATE, soundfont_path

    organ = finish_score([[(0, 8, 60), (8, 8, 67)], [(0, 16, 48)]], Key(0, "major"), 100, (19, 42), 1, 90)
    flute = finish_score([[(0, 4, 72), (4, 12, 74)]], Key(0, "major"), 140, (73,), 1, 70)
    first, second, again = render(organ), render(flute), render(organ)
    assert np.array_equal(first.samples, again.samples)
    # the same piece on a brand-new synth, event by event as tinysoundfont's own API does it
    synth = tinysoundfont.Synth(gain=-3.0, samplerate=SAMPLE_RATE)
    sfid = synth.sfload(str(soundfont_path()))
    synth.program_select(0, sfid, 0, 73, False)
    seconds = flute.to("second")
    events = sorted(
        (int(round(t * SAMPLE_RATE)), on, n.pitch, n.velocity if on else 0)
        for n in seconds.tracks[0].notes
        for on, t in ((1, n.time), (0, n.time + n.duration))
    )
    chunks, cursor = [], 0
    for at, _, pitch, velocity in events:
        chunks.append(np.frombuffer(synth.generate(at - cursor), dtype=np.float32).reshape(-1, 2))
        cursor = at
        synth.noteon(0, pitch, velocity) if velocity else synth.noteoff(0, pitch)
    chunks.append(
        np.frombuffer(synth.generate(len(second.samples) - cursor), dtype=np.float32).reshape(-1, 2)
    )
    fresh = np.clip(np.concatenate(chunks), -1, 1)
    assert fresh.shape == second.samples.shape and np.array_equal(fresh, second.samples)
