"""Send to Video: the Art, Style Transfer and Music tabs hand their results to the Video tab."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from pages.common import friendly_errors
from pages.style_transfer import settings_for_video
from pages.video import EXAMPLE_KEYFRAMES, VideoPage
from pages.video_controls import style_updates
from pipelines.metadata import read_png_parameters
from studio.events import UserError


def wire_send_to(video: VideoPage, tabs: gr.Tabs, *, art: Any, style: Any, music: Any) -> None:
    """Art → keyframe, Style → style settings, Music → soundtrack; each switches to the Video tab.

    Call inside the app's Blocks, after every tab is rendered: one click listener per source page's
    "Send to Video" button, reading that page's components and filling the Video tab's.
    """

    def to_animate() -> tuple[gr.Tabs, gr.Tabs]:
        # updates made at call time: a gr.Tabs built here, in the app's Blocks, would add a component
        return gr.Tabs(selected="video"), gr.Tabs(selected="video-animate")

    @friendly_errors
    def from_art(path: str | None, model_id: str, current: str) -> tuple[Any, ...]:
        params = read_png_parameters(Path(path)) if path else None
        if params is None or "Seed" not in params.settings:
            raise UserError("Generate an image first: its prompt and seed become a Video keyframe.")
        keyframe = {"prompt": params.prompt, "seed": int(params.settings["Seed"])}
        return add_keyframe(current, keyframe), model_id or gr.skip(), *to_animate()

    @friendly_errors
    def from_style(*values: Any) -> tuple[Any, ...]:
        return *style_updates(settings_for_video(*values)), True, *to_animate()

    @friendly_errors
    def from_music(wav: str | None) -> tuple[Any, ...]:
        return existing_file(wav), "file", *to_animate()

    art.send_to_video.click(
        from_art,
        [art.result_image, art.model, video.keyframes],
        [video.keyframes, video.art_model, tabs, video.sections],
        api_name=False,
    )
    style.send_to_video.click(
        from_style,
        style.video_settings,
        [*video.style.inputs, video.animate_style, tabs, video.sections],
        api_name=False,
    )
    music.send_to_video.click(
        from_music,
        music.wav_file,
        [video.soundtrack_file, video.soundtrack_source, tabs, video.sections],
        api_name=False,
    )


def add_keyframe(current: str, settings: dict[str, Any]) -> str:
    """Append 'prompt | seed' (from Art's "Send to Video") to the keyframe list."""
    line = f"{settings['prompt'].replace(chr(10), ' ')} | {int(settings['seed'])}"
    lines = [x for x in (current or "").splitlines() if x.strip()]
    if lines == EXAMPLE_KEYFRAMES.splitlines():
        lines = []  # the example gives way to the user's own keyframes
    return "\n".join([*lines, line])


def existing_file(path: Any) -> str:
    if not path or not Path(str(path)).is_file():
        raise gr.Error("Compose a piece on the Music tab first; its audio becomes the soundtrack.")
    return str(path)
