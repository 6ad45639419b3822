"""Style presets: named prompt/negative templates (Fooocus/A1111 styles), several applied at a time.

The presets live in a data file, `assets/presets/styles.json`:

    {"name": "Watercolor", "prompt": "watercolor painting of {prompt}, ...", "negative_prompt": "photo, ..."}

A1111's rule for applying one style: `{prompt}` in the template is replaced by the prompt so far;
a template without it is appended after a comma. Negative templates are appended to the negative
prompt. Several styles apply in the order chosen, each to the result of the previous one.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from pipelines import ASSETS_DIR
from studio.events import UserError

log = logging.getLogger(__name__)

STYLES_FILE = ASSETS_DIR / "presets" / "styles.json"
PLACEHOLDER = "{prompt}"
MAX_STYLES = 8  # more than a handful of stacked styles only fights itself (and overflows 77 CLIP tokens)


@dataclass(frozen=True)
class StylePreset:
    name: str
    prompt: str  # template; "{prompt}" marks where the user's prompt goes
    negative_prompt: str = ""

    def apply(self, prompt: str, negative: str) -> tuple[str, str]:
        """This style applied to (prompt, negative), by A1111's rule."""
        if PLACEHOLDER in self.prompt:
            styled = self.prompt.replace(PLACEHOLDER, prompt)
        else:
            styled = _join(prompt, self.prompt)
        return styled, _join(negative, self.negative_prompt)


def _join(first: str, second: str) -> str:
    first, second = first.strip().rstrip(","), second.strip()
    return f"{first}, {second}" if first and second else first or second


@functools.cache
def _load(path: Path) -> dict[str, StylePreset]:
    data = json.loads(path.read_text(encoding="utf-8"))
    styles: dict[str, StylePreset] = {}
    for item in data["styles"]:
        preset = StylePreset(item["name"], item.get("prompt", ""), item.get("negative_prompt", ""))
        if preset.name in styles:
            raise ValueError(f"style {preset.name!r} is defined twice in {path}")
        styles[preset.name] = preset
    log.debug("loaded %d style presets from %s", len(styles), path)
    return styles


def load_styles(path: Path | None = None) -> dict[str, StylePreset]:
    """name -> StylePreset, in file order (read once per path)."""
    return dict(_load(Path(path or STYLES_FILE)))


def style_names(path: Path | None = None) -> list[str]:
    return list(load_styles(path))


def apply_styles(
    prompt: str, negative_prompt: str, names: tuple[str, ...] | list[str], path: Path | None = None
) -> tuple[str, str]:
    """The final (prompt, negative) after the chosen styles, in order. Unknown names raise UserError."""
    names = [n for n in names if n]
    if len(names) > MAX_STYLES:
        raise UserError(f"Choose at most {MAX_STYLES} styles at a time (got {len(names)}).")
    styles = load_styles(path)
    unknown = [n for n in names if n not in styles]
    if unknown:
        raise UserError(f"Unknown style {unknown[0]!r}. Available styles: {', '.join(styles)}.")
    for name in dict.fromkeys(names):  # a style chosen twice applies once
        prompt, negative_prompt = styles[name].apply(prompt, negative_prompt)
    return prompt, negative_prompt
