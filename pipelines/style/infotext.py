"""The parameters text and record saved with every style result."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.metadata import GenerationParameters
from pipelines.style import fast as style_fast
from pipelines.style.filters import FILTERS
from pipelines.style.images import LoadedImage
from pipelines.style.options import StyleMode

if TYPE_CHECKING:
    from pipelines.style.pipeline import StyleRequest


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
