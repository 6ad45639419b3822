"""Reading a user's init image: any path, bytes or PIL image, or a message a person understands."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from studio.events import UserError


def load_init_image(source: Any) -> Image.Image:
    """Path, bytes or PIL -> RGB image, or a UserError a person understands."""
    if isinstance(source, Image.Image):
        return source.convert("RGB")
    try:
        if isinstance(source, (bytes, bytearray)):
            data = bytes(source)
        else:
            data = Path(source).read_bytes()
        if not data:
            raise UserError("The init image is an empty (zero-byte) file.")
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.convert("RGB")
    except UserError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise UserError(f"The init image could not be read as an image ({type(error).__name__}).") from None
