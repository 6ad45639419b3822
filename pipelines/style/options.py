"""What a style request can ask for: the modes, the size limits of the device plan, and the checks."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from pipelines.style.fast import NUM_STYLES
from pipelines.style.filters import FILTERS
from studio.device import DevicePlan, Tier
from studio.events import UserError

if TYPE_CHECKING:
    from pipelines.style.pipeline import StyleRequest


MAX_ITERATIONS = 1000


class StyleMode(StrEnum):
    PRESET = "preset"  # 26 built-in styles with blend weights
    IMAGE = "image"  # any style image, fast
    GATYS = "gatys"  # any style image, slow optimisation, best quality
    FILTER = "filter"  # OpenCV filters


@dataclass(frozen=True)
class StyleLimits:
    max_side: int  # largest output long side for the fast modes
    untiled_pixels: int  # above this many output pixels the 26-style network runs in tiles
    gatys_side: int  # largest working long side for Gatys


def limits_for(plan: DevicePlan) -> StyleLimits:
    """Size limits from the device plan. Measured on CPU: 2048² untiled peaks at ~2.9 GB RSS,
    and Gatys costs ~2 s per iteration at 256² on one core (it grows with the pixel count)."""
    budget_side = {Tier.HIGH: 2048, Tier.NORMAL: 1536, Tier.LOW: 1024, Tier.MINIMAL: 768}[plan.tier]
    if plan.is_accelerator:
        gatys = {Tier.HIGH: 1024, Tier.NORMAL: 768, Tier.LOW: 512, Tier.MINIMAL: 384}[plan.tier]
    else:
        gatys = {Tier.HIGH: 512, Tier.NORMAL: 384, Tier.LOW: 256, Tier.MINIMAL: 192}[plan.tier]
    max_side = 4096 if plan.tier is Tier.HIGH else 2048
    return StyleLimits(max_side, budget_side * budget_side, gatys)


# -- validation ----------------------------------------------------------------------------------


def parse_blend(text: str) -> dict[int, float]:
    """'3:0.5, 12:0.5' or '7' -> {3: 0.5, 12: 0.5}; UserError on anything else."""
    weights: dict[int, float] = {}
    for part in (text or "").replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        index_text, _, weight_text = part.partition(":")
        try:
            index, weight = int(index_text), float(weight_text) if weight_text.strip() else 1.0
        except ValueError:
            raise UserError(f"Could not read the blend {part!r}; write it like '3:0.5, 12:0.5'.") from None
        if not 0 <= index < NUM_STYLES:
            raise UserError(f"Style numbers go from 0 to {NUM_STYLES - 1} (got {index}).")
        if weight < 0:
            raise UserError(f"Blend weights cannot be negative (style {index}: {weight}).")
        weights[index] = weights.get(index, 0.0) + weight
    return weights


def validate(request: StyleRequest, limits: StyleLimits) -> None:
    """Refuse what cannot be fixed, before any model loads or any image is decoded."""
    if request.content is None:
        raise UserError("Upload a content image first (or send one from the Art Platform).")
    if not 0.0 <= float(request.strength) <= 1.0:
        raise UserError(f"Strength must be between 0 and 1 (got {request.strength}).")
    if request.size and not 16 <= int(request.size) <= limits.max_side:
        raise UserError(
            f"Output size must be between 16 and {limits.max_side:,} px on the long side on this device "
            f"(got {int(request.size):,})."
        )
    mode = StyleMode(request.mode)
    if mode is StyleMode.PRESET:
        if not request.styles or sum(max(0.0, float(w)) for w in request.styles.values()) <= 0:
            raise UserError("Pick at least one style (click a thumbnail) with a weight above 0.")
        if any(not 0 <= int(i) < NUM_STYLES for i in request.styles):
            raise UserError(f"Style numbers go from 0 to {NUM_STYLES - 1}.")
        if any(float(w) < 0 for w in request.styles.values()):
            raise UserError("Blend weights cannot be negative.")
    if request.detail and not 0 <= int(request.detail) <= limits.max_side:
        raise UserError(
            f"Detail must be between 0 and {limits.max_side:,} px on this device (got {request.detail})."
        )
    if mode in (StyleMode.IMAGE, StyleMode.GATYS) and request.style_image is None:
        raise UserError("Upload a style image (a painting, a texture, ...) for this mode.")
    if mode is StyleMode.FILTER and request.filter_name not in FILTERS:
        raise UserError(f"Unknown filter {request.filter_name!r}. Choose one of: {', '.join(FILTERS)}.")
    if mode is StyleMode.GATYS:
        if not 1 <= int(request.iterations) <= MAX_ITERATIONS:
            raise UserError(f"Iterations must be between 1 and {MAX_ITERATIONS} (got {request.iterations}).")
        if not 32 <= int(request.gatys_size) <= limits.gatys_side:
            raise UserError(
                f"High quality mode is limited to {limits.gatys_side} px on the long side on this device "
                f"(got {int(request.gatys_size)} px). Each iteration optimises every pixel through VGG19; "
                f"choose {limits.gatys_side} px or less, or use a Fast mode for big images."
            )
        if request.content_weight < 0 or request.style_weight < 0 or request.tv_weight < 0:
            raise UserError("Content, style and smoothness weights cannot be negative.")
