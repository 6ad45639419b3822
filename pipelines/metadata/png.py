"""A1111-style `parameters` PNG text chunk: write it, and parse it back.

The format (as written by stable-diffusion-webui and read by most tools, including civitai):

    a castle on a hill, oil painting
    Negative prompt: blurry
    Steps: 25, Sampler: DDIM, CFG scale: 7.5, Seed: 42, Size: 512x512, Model: sd-turbo

Values containing a comma, colon or quote are JSON-quoted, as A1111 does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, PngImagePlugin

# A1111's own pattern for "Key: value," pairs (values may be "quoted, with commas")
_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


@dataclass(frozen=True)
class GenerationParameters:
    prompt: str
    negative_prompt: str = ""
    settings: dict[str, str] = field(default_factory=dict)  # "Steps" -> "25", "Seed" -> "42", ...

    def to_text(self) -> str:
        lines = [self.prompt]
        if self.negative_prompt:
            lines.append(f"Negative prompt: {self.negative_prompt}")
        lines.append(", ".join(f"{k}: {_quote(str(v))}" for k, v in self.settings.items()))
        return "\n".join(lines)

    @classmethod
    def from_text(cls, text: str) -> GenerationParameters:
        *head, last = text.strip().split("\n")
        pairs = _PARAM.findall(last)
        if not pairs:  # no settings line: everything is prompt
            head, pairs = [*head, last], []
        prompt_lines: list[str] = []
        negative_lines: list[str] = []
        for line in head:
            if line.startswith("Negative prompt:"):
                negative_lines.append(line[len("Negative prompt:") :].strip())
            elif negative_lines:
                negative_lines.append(line)
            else:
                prompt_lines.append(line)
        settings = {k.strip(): _unquote(v.strip()) for k, v in pairs}
        return cls("\n".join(prompt_lines).strip(), "\n".join(negative_lines).strip(), settings)


def _quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False) if any(c in value for c in ',:"\n') else value


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def save_png(image: Image.Image, path: Path, parameters: GenerationParameters) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", parameters.to_text())
    image.save(path, format="PNG", pnginfo=info)


def read_png_parameters(path: Path) -> GenerationParameters | None:
    with Image.open(path) as image:
        text = image.info.get("parameters")
    return GenerationParameters.from_text(text) if text else None
