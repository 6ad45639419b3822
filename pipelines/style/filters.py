"""Instant filters, no weights: OpenCV's non-photorealistic rendering plus an oil-paint Kuwahara.

cv2.xphoto.oilPainting needs the contrib wheel, which would replace opencv-python-headless (two cv2
wheels never coexist), so "oil painting" here is a generalised Kuwahara filter (Kuwahara 1976;
the classic painterly smoothing) written with cv2.boxFilter: each pixel takes the mean colour of
whichever of its four quadrant windows has the lowest variance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class FilterSpec:
    label: str
    run: Callable[[np.ndarray, float], np.ndarray]  # (RGB uint8 HxWx3, amount 0..1) -> RGB uint8


def _stylization(rgb: np.ndarray, amount: float) -> np.ndarray:
    sigma_s = 20 + 100 * amount  # spatial extent of the edge-preserving smoothing
    return cv2.cvtColor(
        cv2.stylization(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), sigma_s=sigma_s, sigma_r=0.45),
        cv2.COLOR_BGR2RGB,
    )


def _pencil(rgb: np.ndarray, amount: float, colour: bool) -> np.ndarray:
    gray, coloured = cv2.pencilSketch(
        cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), sigma_s=20 + 60 * amount, sigma_r=0.07, shade_factor=0.04
    )
    return cv2.cvtColor(coloured, cv2.COLOR_BGR2RGB) if colour else cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)


def _cartoon(rgb: np.ndarray, amount: float) -> np.ndarray:
    # 1. flatten colours: a few rounds of bilateral filtering, then quantise to fewer levels
    smooth = rgb
    for _ in range(1 + round(3 * amount)):
        smooth = cv2.bilateralFilter(smooth, d=9, sigmaColor=75, sigmaSpace=75)
    levels = 12 - round(6 * amount)
    step = 256 // levels
    flat = (smooth // step * step + step // 2).astype(np.uint8)
    # 2. ink lines: adaptive threshold of the blurred gray image
    gray = cv2.medianBlur(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 7)
    edges = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 9, 2)
    return cv2.bitwise_and(flat, flat, mask=edges)


def kuwahara(rgb: np.ndarray, radius: int) -> np.ndarray:
    """Kuwahara filter: per pixel, the mean of the least-variant of 4 (r+1)x(r+1) quadrants."""
    img = rgb.astype(np.float32) / 255.0
    lum = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    k = radius + 1
    # box means of colour and of luminance/luminance² over (k x k) windows anchored at the top-left
    mean = cv2.boxFilter(img, -1, (k, k), anchor=(0, 0), normalize=True, borderType=cv2.BORDER_REFLECT)
    mean_l = cv2.boxFilter(lum, -1, (k, k), anchor=(0, 0), normalize=True, borderType=cv2.BORDER_REFLECT)
    mean_l2 = cv2.boxFilter(
        lum * lum, -1, (k, k), anchor=(0, 0), normalize=True, borderType=cv2.BORDER_REFLECT
    )
    var = mean_l2 - mean_l * mean_l
    h, w = lum.shape
    pad = radius
    var_p = cv2.copyMakeBorder(var, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    mean_p = cv2.copyMakeBorder(mean, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    # the four quadrants of pixel (y, x) start at (y - r | y, x - r | x)
    offsets = [(0, 0), (0, pad), (pad, 0), (pad, pad)]
    variances = np.stack([var_p[dy : dy + h, dx : dx + w] for dy, dx in offsets])  # 4 x H x W
    means = np.stack([mean_p[dy : dy + h, dx : dx + w] for dy, dx in offsets])  # 4 x H x W x 3
    best = variances.argmin(axis=0)  # H x W
    out = np.take_along_axis(means, best[None, ..., None].repeat(3, axis=-1), axis=0)[0]
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def _oil(rgb: np.ndarray, amount: float) -> np.ndarray:
    radius = 2 + round(6 * amount) + max(rgb.shape[:2]) // 512  # bigger strokes on bigger images
    return kuwahara(rgb, radius)


FILTERS: dict[str, FilterSpec] = {
    "stylization": FilterSpec("Watercolour (OpenCV stylization)", _stylization),
    "pencil": FilterSpec("Pencil sketch", lambda rgb, a: _pencil(rgb, a, colour=False)),
    "pencil_colour": FilterSpec("Colour pencil", lambda rgb, a: _pencil(rgb, a, colour=True)),
    "cartoon": FilterSpec("Cartoon", _cartoon),
    "oil": FilterSpec("Oil paint (Kuwahara)", _oil),
}


def apply_filter(name: str, rgb: np.ndarray, amount: float = 0.5) -> np.ndarray:
    """RGB uint8 HxWx3 -> filtered RGB uint8 of the same size."""
    cv2.setNumThreads(1)
    return FILTERS[name].run(np.ascontiguousarray(rgb), float(np.clip(amount, 0.0, 1.0)))
