"""PNG Info: read the generation parameters out of any image a diffusion tool wrote.

The formats are recognised by the `sd-parsers` package (MIT): AUTOMATIC1111 `parameters` text,
ComfyUI `prompt` + `workflow` graph JSON, Fooocus, InvokeAI and NovelAI. Its result is mapped to
one flat `PngInfo` (prompt, negative, steps, CFG, sampler, seed, size, model) that a page can
send to the Art controls. Where the file holds an A1111-style `parameters` line (our own files
and A1111's), our exact reader `GenerationParameters.from_text` fills the settings, because it
honours A1111's JSON-quoted values ("Model: \"a, b\"") that a plain comma split would cut.
"""

from __future__ import annotations

import io
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from pipelines.metadata.png import GenerationParameters
from studio.events import UserError

log = logging.getLogger(__name__)

OUR_VERSION = "creative-studio"  # the "Version" setting our own PNGs carry
MAX_FILE_BYTES = 60 * 1024 * 1024  # PNG Info reads headers only; bigger files are refused
MAX_RAW_CHARS = 20_000  # raw chunks kept for display (ComfyUI workflows can be megabytes)
_SIZE = re.compile(r"^\s*\(?\s*(\d+)\s*[x×,]\s*(\d+)\s*\)?\s*$")
# sampler names as A1111, ComfyUI/Fooocus (k-diffusion ids) and InvokeAI write them -> our SAMPLERS
_SAMPLER_NAMES = {
    "ddim": "DDIM",
    "ddpm": "DDPM",
    "euler": "Euler",
    "k_euler": "Euler",
    "euler a": "Euler a",
    "euler_a": "Euler a",
    "euler_ancestral": "Euler a",
    "k_euler_ancestral": "Euler a",
    "dpm++ 2m": "DPM++ 2M",
    "dpmpp_2m": "DPM++ 2M",
    "k_dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_k": "DPM++ 2M Karras",
    "dpm++ 2m karras": "DPM++ 2M Karras",
    "unipc": "UniPC",
    "uni_pc": "UniPC",
    "uni_pc_bh2": "UniPC",
}


@dataclass(frozen=True)
class PngInfo:
    """Generation parameters found in an image (empty fields were not in the file)."""

    generator: str  # "Creative Studio", "AUTOMATIC1111", "ComfyUI", "Fooocus", ... or "" when none
    prompt: str = ""
    negative_prompt: str = ""
    steps: int | None = None
    cfg_scale: float | None = None
    sampler: str = ""  # as the file names it ("dpmpp_2m", "DPM++ 2M Karras", ...)
    scheduler: str = ""  # ComfyUI/A1111 "Schedule type" (karras, normal, ...)
    seed: int | None = None
    width: int | None = None  # the generation size when recorded, else the image's own size
    height: int | None = None
    model: str = ""
    settings: dict[str, str] = field(default_factory=dict)  # every other recorded setting
    raw: dict[str, str] = field(default_factory=dict)  # the metadata chunks as stored (truncated)
    image_size: tuple[int, int] = (0, 0)

    @property
    def found(self) -> bool:
        return bool(self.generator)

    @property
    def art_sampler(self) -> str | None:
        """The Art Platform sampler that matches this file's sampler (+ scheduler), or None."""
        return match_sampler(self.sampler, self.scheduler)

    def to_text(self) -> str:
        """A readable A1111-style summary (what the PNG Info box shows)."""
        if not self.found:
            return "No generation parameters found in this image."
        settings: dict[str, Any] = {}
        for key, value in (
            ("Steps", self.steps),
            ("Sampler", self.sampler),
            ("Schedule type", self.scheduler),
            ("CFG scale", self.cfg_scale),
            ("Seed", self.seed),
            ("Size", f"{self.width}x{self.height}" if self.width and self.height else None),
            ("Model", self.model),
        ):
            if value not in (None, ""):
                settings[key] = value
        settings.update(self.settings)
        return GenerationParameters(self.prompt, self.negative_prompt, settings).to_text()


def match_sampler(name: str, scheduler: str = "") -> str | None:
    """Map a sampler name from any tool to one of the Art Platform's samplers (None if no match)."""
    key = name.strip().lower()
    for suffix in ("_gpu", " gpu"):
        key = key.removesuffix(suffix)
    karras = "karras" in key or scheduler.strip().lower() == "karras"
    key = key.replace(" karras", "").replace("_karras", "").strip()
    found = _SAMPLER_NAMES.get(key) or _SAMPLER_NAMES.get(key.replace(" ", "_"))
    if found == "DPM++ 2M" and karras:
        return "DPM++ 2M Karras"
    return found


def read_png_info(source: str | Path | bytes | Image.Image) -> PngInfo:
    """Read an image's generation parameters; a file with none gives `PngInfo("")` (found=False).

    A missing, empty, oversized or unreadable file raises UserError with a message a person understands.
    """
    from sd_parsers import ParserManager

    image = _open(source)
    owned = image is not source  # never close the caller's own image
    try:
        chunks = {str(k): v for k, v in (getattr(image, "text", None) or image.info).items()}
        raw = {k: text for k, v in chunks.items() if (text := _raw_text(v)) is not None}
        size = image.size
        try:
            parsed = ParserManager().parse(image)
        except Exception as error:  # noqa: BLE001 - a third-party parser failing is "unrecognised", not a crash
            log.warning("sd-parsers failed on an image: %s: %s", type(error).__name__, error)
            parsed = None
    finally:
        if owned:
            image.close()
    if parsed is None:
        # an A1111-style text with no sampler line, or a format sd-parsers does not know
        text = chunks.get("parameters")
        if isinstance(text, str) and text.strip() and not text.lstrip().startswith("{"):
            return _from_parameters_text("unknown (A1111-style text)", text, raw, size)
        return PngInfo("", raw=raw, image_size=size)
    return _from_prompt_info(parsed, chunks, raw, size)


def _open(source: str | Path | bytes | Image.Image) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
        name = "the upload"
    else:
        path = Path(source)
        name = f"'{path.name}'"
        if not path.is_file():
            raise UserError(f"The file {name} does not exist.")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise UserError(
                f"The file {name} is over {MAX_FILE_BYTES // 2**20} MB; PNG Info reads images only."
            )
        data = path.read_bytes()
    if not data:
        raise UserError(f"The file {name} is empty (zero bytes).")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()  # text chunks after the image data are read only once the pixels are
    except Image.DecompressionBombError:
        raise UserError(f"The image {name} is too large (over ~180 megapixels).") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise UserError(
            f"The file {name} could not be read as an image ({type(error).__name__}); is it a damaged PNG?"
        ) from None
    return image


def _raw_text(value: Any) -> str | None:
    """A metadata value as text for display; binary blobs (EXIF, ICC profiles) are left out."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not isinstance(value, str) or not value.isprintable() and "\n" not in value:
        return None
    return value if len(value) <= MAX_RAW_CHARS else value[:MAX_RAW_CHARS] + " …(truncated)"


def _from_parameters_text(generator: str, text: str, raw: dict[str, str], size: tuple[int, int]) -> PngInfo:
    """An A1111-style `parameters` text (ours or A1111's), read exactly by our own reader."""
    params = GenerationParameters.from_text(text)
    settings = dict(params.settings)
    steps, cfg, seed = (settings.pop(k, None) for k in ("Steps", "CFG scale", "Seed"))
    width, height = _parse_size(settings.pop("Size", None)) or size
    if settings.get("Version") == OUR_VERSION:
        generator = "Creative Studio"
    return PngInfo(
        generator,
        params.prompt,
        params.negative_prompt,
        _as_int(steps),
        _as_float(cfg),
        settings.pop("Sampler", ""),
        settings.pop("Schedule type", ""),
        _as_int(seed),
        width,
        height,
        settings.pop("Model", "") or settings.pop("Model hash", ""),
        settings,
        raw,
        size,
    )


def _from_prompt_info(
    info: Any, chunks: dict[str, Any], raw: dict[str, str], size: tuple[int, int]
) -> PngInfo:
    """sd-parsers' PromptInfo (possibly several samplers: ComfyUI hires passes) -> PngInfo."""
    generator = str(getattr(info.generator, "value", info.generator))
    text = chunks.get("parameters")
    if generator == "AUTOMATIC1111" and isinstance(text, str):
        return _from_parameters_text(generator, text, raw, size)
    sampler = info.samplers[0] if info.samplers else None
    params: dict[str, Any] = dict(sampler.parameters) if sampler else {}
    metadata: dict[str, Any] = info.metadata if isinstance(info.metadata, dict) else {}
    steps = _as_int(params.pop("steps", None))
    cfg = _as_float(params.pop("cfg_scale", None))
    seed = _as_int(params.pop("seed", params.pop("noise_seed", None)))
    scheduler = str(params.pop("scheduler", "") or "")
    name = sampler.name if sampler else ""
    if name == scheduler:  # ComfyUI nodes without sampler_name report the scheduler as the name
        scheduler = ""
    width, height = _find_size(params, metadata, chunks) or size
    model = next((str(m) for m in info.models), "") if info.models else ""
    settings = {k: _short(v) for k, v in params.items() if not isinstance(v, (dict, list))}
    if len(info.samplers) > 1:
        settings["Samplers"] = str(len(info.samplers))
    return PngInfo(
        generator,
        info.full_prompt,
        info.full_negative_prompt,
        steps,
        cfg,
        str(name),
        scheduler,
        seed,
        width,
        height,
        model,
        settings,
        raw,
        size,
    )


def _find_size(
    params: dict[str, Any], metadata: dict[str, Any], chunks: dict[str, Any]
) -> tuple[int, int] | None:
    """Generation size wherever a tool put it: width/height keys, "Size"/"resolution", a latent node."""
    for source in (params, metadata):
        if _as_int(source.get("width")) and _as_int(source.get("height")):
            return int(source["width"]), int(source["height"])
        for key in ("size", "Size", "resolution"):
            found = _parse_size(source.get(key))
            if found:
                return found
    # ComfyUI: the EmptyLatentImage (or any latent-size node) in the API graph
    try:
        graph = json.loads(chunks["prompt"]) if isinstance(chunks.get("prompt"), str) else {}
    except json.JSONDecodeError:
        graph = {}
    for node in graph.values() if isinstance(graph, dict) else ():
        inputs = node.get("inputs", {}) if isinstance(node, dict) else {}
        if isinstance(inputs, dict) and _as_int(inputs.get("width")) and _as_int(inputs.get("height")):
            return int(inputs["width"]), int(inputs["height"])
    return None


def _parse_size(value: Any) -> tuple[int, int] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        value = f"{value[0]}x{value[1]}"
    match = _SIZE.match(str(value)) if value is not None else None
    return (int(match.group(1)), int(match.group(2))) if match else None


def _as_int(value: Any) -> int | None:
    try:
        return int(float(value)) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _as_float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 200 else text[:200] + "…"
