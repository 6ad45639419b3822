"""Loudness: rendered and generated music leaves at -16..-14 LUFS with true peak under -1 dBTP.

The figures are measured here independently of pipelines.music.loudness: pyloudnorm's meter on the
written WAV, and the true peak as the largest sample of the 4x polyphase-oversampled signal.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from pipelines.music.loudness import normalize_loudness
from pipelines.music.pipeline import ComposeRequest, ContinueRequest, TextToMusicRequest, bar_step
from studio.events import CancelToken, EtaClock, Step
from tests.pipelines.music.conftest import melody_midi, run

log = logging.getLogger(__name__)


def measured(path: Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) of an audio file, measured from scratch."""
    samples, rate = sf.read(str(path), always_2d=True)
    lufs = pyloudnorm.Meter(rate).integrated_loudness(samples)
    peak = np.abs(resample_poly(samples, 4, 1, axis=0)).max()
    return float(lufs), 20 * math.log10(float(peak))


def assert_in_range(path: Path) -> tuple[float, float]:
    lufs, peak = measured(path)
    assert -16.0 <= lufs <= -14.0, f"{path.name}: {lufs:.2f} LUFS"
    assert peak < -1.0, f"{path.name}: true peak {peak:.2f} dBTP"
    return lufs, peak


@pytest.mark.parametrize("style", ["chorale", "folk", "irish"])
def test_a_composed_piece_is_written_at_standard_loudness(pipeline, style: str) -> None:
    request = ComposeRequest(style=style, bars=4, seed=5)
    _, result = run(pipeline.compose(request, CancelToken()))
    lufs, peak = assert_in_range(result.files.wav)
    figures = result.loudness
    log.warning(
        "%s: %.1f LUFS / %.1f dBTP before -> %.1f LUFS / %.1f dBTP after (measured %.2f / %.2f)",
        style, figures.lufs_before, figures.true_peak_before_db, figures.lufs_after,
        figures.true_peak_after_db, lufs, peak,
    )  # fmt: skip
    assert figures.lufs_before < figures.lufs_after  # the synth leaves it quiet: it was turned up
    assert result.params["lufs_after"] == pytest.approx(lufs, abs=0.1)


def test_a_continuation_is_written_at_standard_loudness(pipeline, tmp_path: Path) -> None:
    opening = melody_midi(tmp_path / "opening.mid", [62, 64, 66, 67, 69, 71, 69, 67])
    request = ContinueRequest(midi_path=str(tmp_path / "opening.mid"), style="folk", bars=2, seed=1)
    _, result = run(pipeline.continue_piece(request, CancelToken()))
    assert result.opening_notes == len(opening)
    assert_in_range(result.files.wav)


def test_tiny_musicgen_output_is_normalised_too(pipeline) -> None:
    request = TextToMusicRequest(prompt="calm piano", duration_s=2.0, seed=1)
    _, result = run(pipeline.text_to_music(request, CancelToken()))
    lufs, peak = assert_in_range(result.files.wav)
    log.warning(
        "musicgen tiny: %.1f LUFS / %.1f dBTP before -> %.1f / %.1f after",
        result.loudness.lufs_before, result.loudness.true_peak_before_db, lufs, peak,
    )  # fmt: skip


def test_silence_and_empty_audio_pass_through_unchanged() -> None:
    for samples in (
        np.zeros((32000, 2), np.float32),
        np.zeros((0, 2), np.float32),
        np.zeros(100, np.float32),
    ):
        out, figures = normalize_loudness(samples, 32000)
        assert out.shape == samples.shape and not np.any(out)
        assert figures.lufs_before is None and figures.lufs_after is None and figures.note


def test_a_clip_shorter_than_one_gating_block_is_normalised() -> None:
    rate = 32000
    t = np.arange(int(0.1 * rate)) / rate  # 100 ms: pyloudnorm alone refuses anything under 400 ms
    tone = (0.01 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out, figures = normalize_loudness(tone, rate)
    assert np.isfinite(out).all() and out.shape == tone.shape
    assert figures.lufs_after == pytest.approx(-15.0, abs=0.5)
    assert figures.true_peak_after_db < -1.0


def test_a_spiky_clip_is_limited_not_clipped() -> None:
    rate = 16000
    rng = np.random.default_rng(0)
    quiet = 0.001 * rng.standard_normal(rate * 3)
    quiet[::4000] = 0.9  # isolated clicks: reaching -15 LUFS would push them far over 0 dBFS
    out, figures = normalize_loudness(quiet.astype(np.float32), rate)
    peak = 20 * math.log10(np.abs(resample_poly(out.astype(np.float64), 4, 1)).max())
    assert peak < -1.0 and figures.limited
    assert np.isfinite(out).all() and np.abs(out).max() < 1.0


def test_bar_progress_never_passes_the_requested_bars(pipeline) -> None:
    clock = EtaClock(9)
    assert bar_step(12, 8, clock).info == {"bars": 8, "bars_total": 8}
    assert bar_step(-1, 8, clock).info["bars"] == 0
    events, _ = run(pipeline.compose(ComposeRequest(style="folk", bars=3, seed=2), CancelToken()))
    steps = [e for e in events if isinstance(e, Step)]
    assert all(s.info["bars"] <= s.info["bars_total"] == 3 for s in steps), [s.info for s in steps]
    assert steps[-1].info["bars"] == 3 and all(s.index <= s.total for s in steps)
