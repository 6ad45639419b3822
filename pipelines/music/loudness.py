"""Loudness normalisation: every piece of music leaves at -15 LUFS with its true peak under -1 dBTP.

A rendered chorale used to peak at -13 dBFS with an RMS of -27 dBFS, so users turned it up and were
then deafened by the next thing they played. Streaming services settle on -14 to -16 LUFS; we aim at
the middle. The meter is pyloudnorm's ITU-R BS.1770-4 integrated loudness (K-weighting, 400 ms
blocks, absolute and relative gating). True peak follows BS.1770's annex 2: the signal is oversampled
4x (scipy's polyphase resampler) and the largest absolute sample is taken, which catches the
inter-sample peaks a DAC or an MP3 decoder would reconstruct.

The chain, in order:

0. remove DC offset and sub-audio rumble (mean removed, then a 2nd-order 20 Hz Butterworth
   high-pass): the meter's K-weighting ignores them and no ear hears them, but they eat headroom
   (the tiny random MusicGen's output is almost all DC offset, which capped its loudness at -19 LUFS);
1. measure the integrated loudness (clips under 0.4 s, one gating block, are measured looped to 1 s);
   silence (no block above the -70 LUFS gate) is returned unchanged;
2. apply the gain that brings it to TARGET_LUFS;
3. if the true peak now exceeds the ceiling, a gentle look-ahead limiter (a 20 ms minimum-hold of the
   gain each oversampled peak needs, smoothed by a 20 ms moving average, so the gain eases down before
   a peak and back up after it) pulls the peaks under it; the limiter costs a little loudness, so
   steps 2-3 repeat on the result until the loudness holds (at most MAX_PASSES rounds);
4. a final plain scale-down guarantees the ceiling whatever the limiter left (it stays above
   MIN_LUFS for ordinary music; a clip of nothing but spikes may end quieter, and `note` says so).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from pipelines.music.render import Audio

log = logging.getLogger(__name__)

TARGET_LUFS = -15.0  # integrated loudness we aim for (middle of the -16..-14 streaming range)
MIN_LUFS = -16.0  # quietest acceptable result; below it `note` says why
CEILING_DBTP = -1.5  # true-peak ceiling we enforce: 0.5 dB under the -1 dBTP spec for 16-bit/MP3 slack
OVERSAMPLE = 4  # true-peak oversampling factor (BS.1770-4 annex 2)
BLOCK_S = 0.4  # BS.1770 gating block: the shortest clip pyloudnorm can measure
HIGHPASS_HZ = 20.0  # DC / rumble filter corner
LIMITER_HOLD_S = 0.02  # limiter look-ahead/hold half-width
MAX_PASSES = 8  # gain + limiter rounds at most (peaky audio converges in 3-6)
SILENCE_LUFS = -70.0  # BS.1770's absolute gate: nothing quieter counts as programme


@dataclass(frozen=True)
class LoudnessResult:
    lufs_before: float | None  # integrated loudness in, LUFS (None: silent)
    lufs_after: float | None  # integrated loudness out, LUFS
    true_peak_before_db: float  # dBTP in (4x oversampled); -inf for digital silence
    true_peak_after_db: float  # dBTP out
    gain_db: float  # overall static gain applied (before the limiter)
    limited: bool  # the limiter had to act on some peaks
    note: str = ""  # why the result is outside the target, if it is

    def as_params(self) -> dict[str, float | bool | None]:
        """The figures for the saved parameters (rounded, JSON-safe)."""

        def r(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else round(x, 2)

        return {
            "lufs_before": r(self.lufs_before),
            "lufs_after": r(self.lufs_after),
            "true_peak_before_dbtp": r(self.true_peak_before_db),
            "true_peak_after_dbtp": r(self.true_peak_after_db),
            "loudness_gain_db": r(self.gain_db),
            "limited": self.limited,
        }


def _frames(samples: np.ndarray) -> np.ndarray:
    """(n,) or (n, channels) -> float64 (n, channels)."""
    x = np.asarray(samples, dtype=np.float64)
    return x[:, None] if x.ndim == 1 else x


def _oversampled_peaks(x: np.ndarray) -> np.ndarray:
    """Per original sample, the largest |value| of the 4x-oversampled signal over all channels: (n,)."""
    from scipy.signal import resample_poly

    n = len(x)
    if n == 0:
        return np.zeros(0)
    if n < 8:  # too short for the polyphase filter to mean anything
        return np.abs(x).max(axis=1)
    up = resample_poly(x, OVERSAMPLE, 1, axis=0)  # (4n, channels)
    up = np.abs(up[: n * OVERSAMPLE]).max(axis=1)
    return np.maximum(up.reshape(n, OVERSAMPLE).max(axis=1), np.abs(x).max(axis=1))


def true_peak_db(samples: np.ndarray) -> float:
    """True peak in dBTP (4x oversampling); -inf for digital silence."""
    peaks = _oversampled_peaks(_frames(samples))
    peak = float(peaks.max()) if len(peaks) else 0.0
    return 20 * math.log10(peak) if peak > 0 else -math.inf


def integrated_lufs(samples: np.ndarray, sample_rate: int) -> float | None:
    """BS.1770-4 integrated loudness with pyloudnorm; a clip under 0.4 s is measured looped to 1 s.

    None when there is nothing to measure (empty, or silent below the -70 LUFS gate).
    """
    import pyloudnorm

    x = _frames(samples)
    if len(x) == 0 or not np.any(x):
        return None
    if len(x) < int(BLOCK_S * sample_rate) + 1:  # a steady loop has the loudness of the clip itself
        x = np.tile(x, (math.ceil(sample_rate / len(x)), 1))
    meter = pyloudnorm.Meter(sample_rate)
    with np.errstate(divide="ignore"):  # pyloudnorm takes log10 of silent blocks
        lufs = float(meter.integrated_loudness(x))
    return lufs if math.isfinite(lufs) and lufs > SILENCE_LUFS else None


def remove_dc(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """(n, ch) minus its mean, through a 2nd-order Butterworth high-pass at HIGHPASS_HZ."""
    from scipy.signal import butter, sosfilt

    if len(x) < 2:
        return x
    centred = x - x.mean(axis=0, keepdims=True)
    sos = butter(2, HIGHPASS_HZ, btype="highpass", fs=sample_rate, output="sos")
    return sosfilt(sos, centred, axis=0)


def _limit(x: np.ndarray, sample_rate: int, ceiling: float) -> tuple[np.ndarray, bool]:
    """Look-ahead peak limiter: the gain each (oversampled) peak needs, held and smoothed."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    peaks = _oversampled_peaks(x)
    need = np.minimum(1.0, ceiling / np.maximum(peaks, 1e-12))  # gain each sample needs, <= 1
    if need.min() >= 1.0:
        return x, False
    half = max(1, int(LIMITER_HOLD_S * sample_rate))
    # a minimum over +-half then a mean over +-half: at every peak the mean only sees values at or
    # below that peak's own need, so the smoothed gain never lets a peak through
    held = minimum_filter1d(need, size=2 * half + 1, mode="nearest")
    gain = uniform_filter1d(held, size=2 * half + 1, mode="nearest")
    return x * gain[:, None], True


def normalize_loudness(
    samples: np.ndarray,
    sample_rate: int,
    target_lufs: float = TARGET_LUFS,
    ceiling_dbtp: float = CEILING_DBTP,
) -> tuple[np.ndarray, LoudnessResult]:
    """float32 samples ((n,) or (n, ch)) at `target_lufs` with true peak <= `ceiling_dbtp`, plus the figures."""
    original = np.asarray(samples)
    lufs_before = integrated_lufs(original, sample_rate)
    peak_before = true_peak_db(original)
    if lufs_before is None:  # silence (or nothing): no gain can make it loud, and it must not blow up
        result = LoudnessResult(None, None, peak_before, peak_before, 0.0, False, "silent: left unchanged")
        log.info("loudness: silent clip (%d samples), left unchanged", len(original))
        return original.astype(np.float32, copy=True), result
    ceiling = 10 ** (ceiling_dbtp / 20)
    x = remove_dc(_frames(original), sample_rate)  # 0. DC and rumble out
    lufs = integrated_lufs(x, sample_rate) or lufs_before
    # 1-2. static gain to the target, then the limiter; the limiter costs loudness, so repeat until
    #      the loudness holds (one pass when no peak needed limiting, a few for very peaky audio)
    gain_db, limited, y = 0.0, False, x
    for _ in range(MAX_PASSES):
        step = target_lufs - lufs
        if abs(step) < 0.05:
            break
        gain_db += step
        y, acted = _limit(y * 10 ** (step / 20), sample_rate, ceiling)
        limited = limited or acted
        measured = integrated_lufs(y, sample_rate)
        if not acted or measured is None:
            break
        lufs = measured
    # 3. a plain scale-down guarantees the ceiling (resampling the limited signal can overshoot a hair)
    peak = true_peak_db(y)
    if peak > ceiling_dbtp:
        y = y * 10 ** ((ceiling_dbtp - peak) / 20)
    out = np.clip(y, -1.0, 1.0).astype(np.float32)
    if original.ndim == 1:
        out = out[:, 0]
    lufs_after = integrated_lufs(out, sample_rate)
    peak_after = true_peak_db(out)
    note = ""
    if lufs_after is not None and lufs_after < MIN_LUFS:
        note = f"peaks limit the loudness to {lufs_after:.1f} LUFS"
    result = LoudnessResult(lufs_before, lufs_after, peak_before, peak_after, gain_db, limited, note)
    log.info(
        "loudness: %.1f LUFS, %.1f dBTP -> %.1f LUFS, %.1f dBTP (gain %+.1f dB%s)%s",
        lufs_before, peak_before, lufs_after if lufs_after is not None else -math.inf, peak_after,
        gain_db, ", limited" if limited else "", f"; {note}" if note else "",
    )  # fmt: skip
    return out, result


def normalize_audio(audio: Audio) -> tuple[Audio, LoudnessResult]:
    """The audio at TARGET_LUFS integrated with its true peak under the ceiling."""
    samples, loudness = normalize_loudness(audio.samples, audio.sample_rate)
    return Audio(samples, audio.sample_rate), loudness
