"""Image I/O and colour helpers for style transfer: safe loading, alpha, luminance-only transfer.

Loading never trusts the file: a zero-byte, corrupt or non-image file is a UserError, and a huge
image is never fully decoded. PIL refuses anything above 2x Image.MAX_IMAGE_PIXELS (~179 MP) with a
DecompressionBombError before decoding; we read the header ourselves first, so a 20000x20000 JPEG
is decoded at 1/8 scale (JPEG draft mode, cheap) and other formats that large are refused with
their size in the message. Everything is converted to RGB; an alpha channel is kept aside so the
result can get it back.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from studio.events import UserError

log = logging.getLogger(__name__)

MAX_DECODE_PIXELS = 50_000_000  # never decode more than this (~150 MB of RGB); beyond: draft or refuse
MIN_SIDE = 16  # smaller than this is not a picture we can stylize


@dataclass(frozen=True)
class LoadedImage:
    rgb: Image.Image  # RGB, alpha composited over white
    alpha: Image.Image | None  # the original alpha channel, if any
    original_size: tuple[int, int]  # size in the file (before any draft downscale)
    notices: tuple[str, ...] = ()  # things the user should know (downscaled, converted, ...)


def load_image(source: Any, role: str = "content", max_decode_pixels: int = MAX_DECODE_PIXELS) -> LoadedImage:
    """Path, bytes, numpy array or PIL image -> LoadedImage, or a UserError a person understands.

    `max_decode_pixels` is the most the caller can use: bigger images come back shrunk to it (a
    JPEG is draft-decoded near it), with a notice; other formats above MAX_DECODE_PIXELS are refused.
    """
    if source is None:
        raise UserError(f"No {role} image was given. Upload one first.")
    if isinstance(source, np.ndarray):
        source = Image.fromarray(_as_uint8(source))
    if isinstance(source, Image.Image):
        return _finish(source, role, source.size, [])
    data = _read_bytes(source, role)
    notices: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        size = image.size
        if size[0] * size[1] > max_decode_pixels:
            image = _draft_or_refuse(image, role, max_decode_pixels)
        image.load()
        image = _shrink_to(image, max_decode_pixels)
    except Image.DecompressionBombError:
        image, size = _open_huge(data, role, max_decode_pixels)
    except UserError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as error:
        raise UserError(
            f"The {role} file could not be read as an image ({type(error).__name__}). "
            "Use a PNG, JPEG or WebP picture."
        ) from None
    if image.size != size:
        notices.append(
            f"The {role} image is {size[0]:,}×{size[1]:,} px; it was reduced to "
            f"{image.size[0]:,}×{image.size[1]:,} (the most this device uses) while decoding."
        )
    return _finish(image, role, size, notices)


def _read_bytes(source: Any, role: str) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise UserError(f"The {role} image file was not found.")
        data = path.read_bytes()
    if not data:
        raise UserError(f"The {role} image is an empty (zero-byte) file.")
    return data


def _draft_or_refuse(image: Image.Image, role: str, target_pixels: int) -> Image.Image:
    """JPEG decodes at 1/2, 1/4 or 1/8 scale for almost nothing, so it is drafted near the target;
    other formats are decoded whole up to MAX_DECODE_PIXELS (then shrunk), and refused above it."""
    w, h = image.size
    if image.format == "JPEG":
        # draft picks the smallest of 1/1, 1/2, 1/4, 1/8 at least this big: <= 4x the target
        scale = (target_pixels / (w * h)) ** 0.5
        image.draft("RGB", (max(1, int(w * scale)), max(1, int(h * scale))))
        if image.size[0] * image.size[1] <= max(4 * target_pixels, MAX_DECODE_PIXELS):
            return image
    elif w * h <= MAX_DECODE_PIXELS:
        return image
    raise UserError(
        f"The {role} image is {w:,}×{h:,} px ({w * h / 1e6:,.0f} MP); the limit is "
        f"{MAX_DECODE_PIXELS / 1e6:,.0f} MP. Downscale it (or save it as JPEG) and try again."
    )


def _shrink_to(image: Image.Image, max_pixels: int) -> Image.Image:
    """After a draft decode: the last factor down to the pixel budget (Lanczos)."""
    w, h = image.size
    if w * h <= max_pixels:
        return image
    scale = (max_pixels / (w * h)) ** 0.5
    return image.resize((max(1, int(w * scale)), max(1, int(h * scale))), Image.LANCZOS)


def _open_huge(data: bytes, role: str, max_pixels: int) -> tuple[Image.Image, tuple[int, int]]:
    """Past PIL's bomb guard: read only the header with the format's own class, then draft or refuse."""
    from PIL import JpegImagePlugin, PngImagePlugin

    for plugin in (JpegImagePlugin.JpegImageFile, PngImagePlugin.PngImageFile):
        try:
            image = plugin(io.BytesIO(data))  # parses the header only; no bomb check, no decode
        except (SyntaxError, OSError, ValueError):
            continue
        size = image.size
        image = _draft_or_refuse(image, role, max_pixels)
        image.load()
        return _shrink_to(image, max_pixels), size
    raise UserError(f"The {role} image is too large to open safely. Downscale it and try again.")


def _finish(image: Image.Image, role: str, size: tuple[int, int], notices: list[str]) -> LoadedImage:
    image = ImageOps.exif_transpose(image)  # phone photos: honour the rotation flag
    if min(image.size) < MIN_SIDE:
        raise UserError(
            f"The {role} image is {image.size[0]}×{image.size[1]} px; both sides need at least {MIN_SIDE} px."
        )
    alpha = None
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        alpha = rgba.getchannel("A")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(white, rgba).convert("RGB")
    elif image.mode in ("I", "I;16", "F"):
        # 16-bit/float grayscale: scale into 0..255 instead of clipping
        arr = np.asarray(image, dtype=np.float32)
        span = float(arr.max() - arr.min()) or 1.0
        rgb = Image.fromarray(((arr - arr.min()) / span * 255).astype(np.uint8)).convert("RGB")
    else:
        rgb = image.convert("RGB")
    return LoadedImage(rgb, alpha, size, tuple(notices))


def _as_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating) and arr.max() <= 1.0:
        arr = arr * 255.0
    return np.clip(arr, 0, 255).astype(np.uint8)


def fit_long_side(image: Image.Image, long_side: int) -> Image.Image:
    """Resize so the long side is `long_side` (up or down), keeping the aspect ratio."""
    w, h = image.size
    if max(w, h) == long_side:
        return image
    scale = long_side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return image.resize(size, Image.LANCZOS)


# -- colour --------------------------------------------------------------------------------------
# ITU-R BT.601 full-range YCbCr (what JPEG and PIL use), in float so nothing is lost to rounding.
_RGB_TO_YCC = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], dtype=np.float32
)
_YCC_TO_RGB = np.linalg.inv(_RGB_TO_YCC).astype(np.float32)


def to_float(image: Image.Image) -> np.ndarray:
    """PIL RGB -> HxWx3 float32 in 0..1."""
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def to_pil(arr: np.ndarray) -> Image.Image:
    """HxWx3 float 0..1 -> PIL RGB (rounded, clipped)."""
    return Image.fromarray((np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))


def rgb_to_ycc(rgb: np.ndarray) -> np.ndarray:
    return rgb @ _RGB_TO_YCC.T  # (..., 3): Y in 0..1, Cb/Cr centred on 0


def ycc_to_rgb(ycc: np.ndarray) -> np.ndarray:
    return ycc @ _YCC_TO_RGB.T


def transfer_luminance(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Preserve the content's colours: the stylized luminance with the content's chroma (Cb, Cr).

    As in Gatys et al. 2016, "Preserving color in neural artistic style transfer", luminance-only
    transfer. Both arrays are HxWx3 float 0..1 of the same size.
    """
    y = rgb_to_ycc(stylized)[..., :1]
    chroma = rgb_to_ycc(content)[..., 1:]
    return np.clip(ycc_to_rgb(np.concatenate([y, chroma], axis=-1)), 0.0, 1.0)


def blend(stylized: np.ndarray, content: np.ndarray, strength: float) -> np.ndarray:
    """strength 0 = the content, 1 = the stylized image; linear in between."""
    if strength >= 1.0:
        return stylized
    if strength <= 0.0:
        return content
    return content + (stylized - content) * strength


def reattach_alpha(image: Image.Image, alpha: Image.Image | None) -> Image.Image:
    if alpha is None:
        return image
    rgba = image.convert("RGBA")
    rgba.putalpha(alpha.resize(image.size, Image.LANCZOS) if alpha.size != image.size else alpha)
    return rgba
