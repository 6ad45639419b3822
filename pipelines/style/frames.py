"""Style many frames in memory: the Style pipeline's fast modes without a PNG and a History row per call.

`FrameStyler(registry, request)` takes the same `StyleRequest` as the Style tab (its `content` is
ignored), checks it once, loads the ONNX networks once (through the registry, shared with the tab),
computes what does not change between frames once (the style weights, an arbitrary style image's
style vector), then `style(frame)` runs one frame exactly as `StylePipeline` does: the mode's
network or filter, then "preserve colours", then "strength". Gatys is refused (minutes per frame).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from pipelines.style import fast as style_fast
from pipelines.style.filters import apply_filter
from pipelines.style.images import blend, fit_long_side, load_image, to_float, to_pil, transfer_luminance
from pipelines.style.infotext import describe
from pipelines.style.options import StyleMode, limits_for, validate
from pipelines.style.pipeline import FAST_ID, TASK, StyleRequest
from studio.events import UserError
from studio.registry import ModelRegistry

log = logging.getLogger(__name__)

FRAME_MODES = (StyleMode.PRESET, StyleMode.IMAGE, StyleMode.FILTER)


class FrameStyler:
    """Stylize frames one by one with one style setting; models and style vectors are loaded once."""

    def __init__(self, registry: ModelRegistry, request: StyleRequest) -> None:
        mode = StyleMode(request.mode)
        if mode not in FRAME_MODES:
            raise UserError(
                "High quality (Gatys) takes minutes per image, too slow for every frame of a clip; "
                "choose one of the 26 styles, a style image or a filter."
            )
        self.limits = limits_for(registry.plan)
        validate(dataclasses.replace(request, content=b"frames"), self.limits)
        self.request = request
        self.mode = mode
        self.notices: list[str] = []  # e.g. a model fallback; the caller shows them
        self._models: style_fast.FastStyleModels | None = None
        self._weights: np.ndarray | None = None
        self._vector: np.ndarray | None = None
        if mode is not StyleMode.FILTER:
            loaded = registry.load(FAST_ID, TASK)
            if loaded.notice:
                self.notices.append(loaded.notice)
            self._models = loaded.model
        if mode is StyleMode.PRESET:
            self._weights = style_fast.style_weight_vector(request.styles)
        elif mode is StyleMode.IMAGE:
            style = load_image(request.style_image, "style", max_decode_pixels=self.limits.max_side**2)
            self.notices.extend(style.notices)
            self._vector = style_fast.style_vector(self._models, style.rgb)

    @property
    def label(self) -> str:
        """A short description for progress labels and History titles."""
        return describe(self.request)

    def params(self) -> dict[str, object]:
        """The style settings to record with a result (the style image by name only)."""
        request = self.request
        image = request.style_image
        image_name = Path(image).name if isinstance(image, (str, Path)) else image and type(image).__name__
        return {
            "mode": self.mode.value,
            "styles": {str(k): v for k, v in request.styles.items()} if self.mode is StyleMode.PRESET else {},
            "style_image": image_name if self.mode is StyleMode.IMAGE else None,
            "filter_name": request.filter_name if self.mode is StyleMode.FILTER else None,
            "filter_amount": request.filter_amount if self.mode is StyleMode.FILTER else None,
            "strength": request.strength,
            "preserve_colors": request.preserve_colors,
            "detail": request.detail,
        }

    def style(self, frame: np.ndarray) -> np.ndarray:
        """HxWx3 RGB frame (uint8, or float 0..1) -> the styled frame, HxWx3 float32 in 0..1, same size."""
        content = frame.astype(np.float32) / 255.0 if frame.dtype == np.uint8 else frame.astype(np.float32)
        if self.mode is StyleMode.FILTER:
            rgb = frame if frame.dtype == np.uint8 else (np.clip(frame, 0, 1) * 255 + 0.5).astype(np.uint8)
            stylized = apply_filter(self.request.filter_name, rgb, self.request.filter_amount)
            stylized = stylized.astype(np.float32) / 255.0
        elif self.mode is StyleMode.PRESET:
            stylized = self._preset(content)
        else:
            stylized = self._arbitrary(content)
        if self.request.preserve_colors:
            stylized = transfer_luminance(stylized, content)
        return np.asarray(blend(stylized, content, float(self.request.strength)), dtype=np.float32)

    def _preset(self, content: np.ndarray) -> np.ndarray:
        h, w = content.shape[:2]
        if h * w <= self.limits.untiled_pixels:
            return style_fast.run_multistyle(self._models, content, self._weights)
        # above the device's pixel budget: tiles sharing whole-image statistics, as the Style tab does
        side = int(self.limits.untiled_pixels**0.5)
        side -= side % 4
        plan = style_fast.TilePlan(tile=side, overlap=max(64, side // 8), stats_side=side)
        return style_fast.run_multistyle_tiled(self._models, content, self._weights, plan)

    def _arbitrary(self, content: np.ndarray) -> np.ndarray:
        h, w = content.shape[:2]
        detail = min(int(self.request.detail), max(h, w))
        if detail > style_fast.ARBITRARY_SIZE:
            work = to_float(fit_long_side(to_pil(content), detail))
            out = style_fast.run_arbitrary_tiled(self._models, work, self._vector)
        else:
            out = style_fast.run_arbitrary(self._models, content, self._vector)
        if out.shape[:2] != (h, w):
            out = to_float(to_pil(out).resize((w, h), Image.LANCZOS))
        return out
