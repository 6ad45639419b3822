"""Pieces of the Video tab: safe video/audio uploads, the shared style controls, the History rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from pages.common import SafeImage
from pipelines.style import StyleMode, StyleRequest, parse_blend, style_label
from pipelines.video import probe_clip
from studio.events import UserError
from studio.store import Record

STYLE_MODES = [
    ("26 styles (or a blend)", StyleMode.PRESET.value),
    ("Any style image", StyleMode.IMAGE.value),
    ("Instant filter", StyleMode.FILTER.value),
]


def _upload_path(payload: Any, what: str) -> Path | None:
    """The uploaded file's path, or a gr.Error for a missing or zero-byte upload."""
    if payload is None:
        return None
    path = Path(getattr(payload, "path", "") or "")
    name = Path(getattr(payload, "orig_name", None) or path.name).name
    if not path.is_file():
        raise gr.Error(f"The uploaded {what} '{name}' did not arrive; upload it again.")
    if path.stat().st_size == 0:
        raise gr.Error(f"The uploaded {what} '{name}' is an empty (zero-byte) file.")
    return path


class SafeVideo(gr.Video):
    """gr.Video whose upload is checked by its bytes (not its name) before the handler runs.

    A zero-byte, corrupt or non-video file (whatever its extension says) gets a clear gr.Error; the
    handler receives the path unconverted (the pipeline reads it through ffmpeg frame by frame).
    """

    def get_block_name(self) -> str:
        return "video"  # the stock gr.Video front-end

    def preprocess(self, payload: Any) -> str | None:
        path = _upload_path(payload, "video")
        if path is None:
            return None
        try:
            probe_clip(path)
        except UserError as error:
            raise gr.Error(str(error)) from None
        return str(path)


class SafeAudioPath(gr.Audio):
    """gr.Audio handing over the uploaded file's path; empty files get a clear gr.Error (the soundtrack
    reader judges the content and says when it is not audio)."""

    def get_block_name(self) -> str:
        return "audio"

    def preprocess(self, payload: Any) -> str | None:
        path = _upload_path(payload, "audio file")
        return str(path) if path is not None else None


@dataclass
class StyleControls:
    mode: gr.Radio
    style: gr.Dropdown
    blend: gr.Textbox
    style_image: SafeImage
    filter_name: gr.Dropdown
    filter_amount: gr.Slider
    strength: gr.Slider
    preserve: gr.Checkbox

    @classmethod
    def build(cls, num_styles: int, filters: dict[str, Any]) -> StyleControls:
        mode = gr.Radio(
            STYLE_MODES, value=StyleMode.PRESET.value, label="Style mode", elem_id="video-style-mode"
        )
        with gr.Row():
            style = gr.Dropdown([(style_label(k), k) for k in range(num_styles)], value=0, label="Style")
            blend = gr.Textbox(label="Blend (overrides the style)", placeholder="3:0.5, 12:0.5", max_lines=1)
        style_image = SafeImage(
            label="Style image", type="filepath", sources=["upload", "clipboard"], height=160
        )
        with gr.Row():
            filter_name = gr.Dropdown(
                [(spec.label, key) for key, spec in filters.items()], value="stylization", label="Filter"
            )
            filter_amount = gr.Slider(0, 1, value=0.5, step=0.05, label="Filter amount")
        with gr.Row():
            strength = gr.Slider(0, 1, value=1.0, step=0.05, label="Strength")
            preserve = gr.Checkbox(False, label="Preserve original colours")
        return cls(mode, style, blend, style_image, filter_name, filter_amount, strength, preserve)

    @property
    def inputs(self) -> list[Any]:
        return [
            self.mode, self.style, self.blend, self.style_image,
            self.filter_name, self.filter_amount, self.strength, self.preserve,
        ]  # fmt: skip


def style_request(
    mode: str, style: Any, blend: str, style_image: str | None, filter_name: str,
    filter_amount: float, strength: float, preserve: bool,
) -> StyleRequest:  # fmt: skip
    """The style controls -> the Style pipeline's request (its content is filled per frame)."""
    mode = StyleMode(mode or StyleMode.PRESET.value)
    if mode is StyleMode.IMAGE and not style_image:
        raise UserError("Upload a style image, or choose one of the 26 styles or a filter.")
    styles = parse_blend(blend) if blend and blend.strip() else {int(style or 0): 1.0}
    return StyleRequest(
        content=None,
        mode=mode,
        styles=styles,
        style_image=style_image,
        filter_name=filter_name or "stylization",
        filter_amount=0.5 if filter_amount is None else float(filter_amount),
        strength=1.0 if strength is None else float(strength),
        preserve_colors=bool(preserve),
    )


def style_updates(settings: dict[str, Any] | None) -> tuple[Any, ...]:
    """The Style tab's settings (its "Send to Video") -> values for StyleControls.inputs."""
    if not settings:
        raise gr.Error("Choose a style on the Style Transfer tab first.")
    mode = settings.get("mode", StyleMode.PRESET.value)
    if mode == StyleMode.GATYS.value:
        raise gr.Error("High quality (Gatys) takes minutes per frame; pick a fast style to send to Video.")
    styles = {int(k): float(v) for k, v in (settings.get("styles") or {"0": 1.0}).items()}
    single = len(styles) == 1 and next(iter(styles.values())) == 1.0
    blend = "" if single else ", ".join(f"{k}:{v:g}" for k, v in styles.items())
    return (
        mode,
        next(iter(styles)),
        blend,
        settings.get("style_image"),
        settings.get("filter_name", "stylization"),
        settings.get("filter_amount", 0.5),
        settings.get("strength", 1.0),
        bool(settings.get("preserve_colors", False)),
    )


def history_rows(records: list[Record]) -> list[list[Any]]:
    """[id, when, kind, title, frames, seconds] per saved video, newest first."""
    rows = []
    for record in records:
        params = record.params
        seconds = params.get("duration") or (
            params.get("frames", 0) / params["fps"] if params.get("fps") else None
        )
        rows.append(
            [
                record.id,
                record.when,
                params.get("kind", ""),
                record.title[:80],
                params.get("frames", ""),
                round(float(seconds), 2) if seconds else "",
            ]
        )
    return rows


def whole(value: Any, name: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number (got {str(value)[:40]!r}).") from None
    if number != int(number):
        raise UserError(f"{name} must be a whole number (got {number}).")
    return int(number)
