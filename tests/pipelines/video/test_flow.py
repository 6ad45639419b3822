"""Optical flow, warping, the occlusion mask and the temporal blend on synthetic motion."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipelines.video.flow import (
    PRESETS,
    FlowEstimator,
    FlowPair,
    consistency_mask,
    flicker,
    temporal_blend,
    warp,
)
from tests.pipelines.video.clips import moving_frames


def _texture(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """Smooth random texture (blurred noise), uint8 RGB: DIS needs gradients to follow."""
    noise = np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)
    return (cv2.GaussianBlur(noise, (0, 0), 2.0) * 255).clip(0, 255).astype(np.uint8)


def _shift(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Content moved right by dx and down by dy (edges wrap; the tests look at the interior)."""
    return np.roll(np.roll(image, dy, axis=0), dx, axis=1)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_flow_recovers_a_translation(preset: str) -> None:
    a = _texture()
    b = _shift(a, 3, 2)
    pair = FlowEstimator(preset).pair(a, b)
    inner = (slice(16, -16), slice(16, -16))
    # backward flow: pixel x of b came from x - (3, 2) in a
    assert np.median(pair.backward[inner][..., 0]) == pytest.approx(-3, abs=0.25)
    assert np.median(pair.backward[inner][..., 1]) == pytest.approx(-2, abs=0.25)
    assert np.median(pair.forward[inner][..., 0]) == pytest.approx(3, abs=0.25)


def test_warp_brings_the_previous_frame_onto_the_current_one() -> None:
    a = _texture()
    b = _shift(a, 3, 2)
    pair = FlowEstimator().pair(a, b)
    inner = (slice(16, -16), slice(16, -16))
    before = np.abs(a.astype(float) - b)[inner].mean()
    after = np.abs(warp(a, pair.backward).astype(float) - b)[inner].mean()
    assert after < before / 5


def test_push_streams_pairs_between_consecutive_frames() -> None:
    frames = moving_frames(3, side=64)
    estimator = FlowEstimator()
    assert estimator.push(frames[0]) is None
    pair = estimator.push(frames[1])
    assert isinstance(pair, FlowPair) and pair.backward.shape == (64, 64, 2)


def test_consistency_mask_drops_occluded_pixels() -> None:
    # a patch slides 8 px right over a static photo: the strip it uncovers on its left has no match
    # in the previous frame, so forward and backward flow disagree there
    background = moving_frames(1, side=128)[0]
    patch = cv2.resize(background[:64, :64], (32, 32))[::-1].copy()
    a, b = background.copy(), background.copy()
    a[48:80, 40:72] = patch
    b[48:80, 48:80] = patch
    pair = FlowEstimator("medium").pair(a, b)
    mask = consistency_mask(pair)
    assert np.median(pair.backward[52:76, 56:76, 0]) == pytest.approx(-8, abs=0.5)
    assert mask[52:76, 41:48].mean() < 0.2  # uncovered
    assert mask[52:76, 56:76].mean() > 0.9  # the moving patch itself
    assert mask[90:120, 90:120].mean() > 0.9  # static background


def test_consistency_mask_drops_pixels_that_came_from_outside() -> None:
    flow = np.zeros((16, 16, 2), np.float32)
    flow[..., 0] = -4  # every pixel came from 4 px to its left: the first 4 columns from outside
    mask = consistency_mask(FlowPair(-flow, flow))
    assert mask[:, :4].max() == 0 and mask[:, 4:].min() == 1


def test_temporal_blend_follows_the_formula() -> None:
    rng = np.random.default_rng(3)
    stylized, previous = rng.random((2, 16, 16, 3), dtype=np.float32)
    zero = np.zeros((16, 16, 2), np.float32)
    pair = FlowPair(zero, zero)  # no motion, everything consistent
    assert temporal_blend(stylized, previous, pair, 0.0) is stylized
    out = temporal_blend(stylized, previous, pair, 0.75)
    np.testing.assert_allclose(out, 0.75 * previous + 0.25 * stylized, atol=1e-5)


def test_flicker_of_the_source_is_small_and_noise_is_large() -> None:
    frames = moving_frames(6, side=96)
    estimator = FlowEstimator()
    pairs = [p for p in (estimator.push(f) for f in frames) if p is not None]
    rng = np.random.default_rng(0)
    noisy = [np.clip(f + rng.normal(0, 20, f.shape), 0, 255).astype(np.uint8) for f in frames]
    assert flicker(frames, pairs) < 4.0  # bilinear resampling of a rotating photo, on 0..255
    assert flicker(noisy, pairs) > 4 * flicker(frames, pairs)
