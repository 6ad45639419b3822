"""Video tab: stylize a clip (flow-steadied), animate between prompts with a soundtrack, hub text-to-video."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image

from pages.art_models import art_model_choices
from pages.common import (
    HEAVY,
    HEAVY_ADMISSION,
    follow,
    friendly_errors,
    make_stop_handler,
    progress_on,
    progress_panel,
    session_key,
    turn_label,
)
from pages.serving import discard_uploads, served, viewer, visible_history
from pages.video_controls import (
    SafeAudioPath,
    SafeVideo,
    StyleControls,
    history_rows,
    style_request,
    whole,
)
from pipelines.art import TASK as ART_TASK
from pipelines.music import STYLES as MUSIC_STYLES
from pipelines.music import ComposeRequest
from pipelines.style import FILTERS, NUM_STYLES
from pipelines.video import (
    DEFAULT_LIMITS,
    INTERPOLATIONS,
    MAX_FRAMES,
    MAX_KEYFRAMES,
    T2V_TASK,
    TASK,
    AnimateRequest,
    SoundtrackRequest,
    StylizeRequest,
    TextToVideoRequest,
    VideoPipeline,
    iter_history_choices,
    parse_keyframes,
)
from studio.context import StudioContext
from studio.events import Finished, Step, UserError

log = logging.getLogger(__name__)

LIMITS = DEFAULT_LIMITS
SOUNDTRACK_SOURCES = [
    ("No soundtrack", "none"),
    ("A Music result from History", "history"),
    ("An audio file", "file"),
    ("Compose one now", "compose"),
]
FITS = [("Cut and fade the music to the video", "trim"), ("The video's length follows the music", "follow")]
EXAMPLE_KEYFRAMES = (
    "a red circle in a blue sky | 7\nthree yellow stars at sunset | 7\na green square at night | 8"
)


@dataclass
class VideoPage:
    blocks: gr.Blocks
    sections: gr.Tabs  # the three sections; "video-animate" is where keyframes arrive
    keyframes: gr.Textbox  # Art's "Send to Video" appends "prompt | seed" here ...
    art_model: gr.Dropdown  # ... and picks the model that drew it
    style: StyleControls  # the Style tab's "Send to Video" fills these
    animate_style: gr.Checkbox  # ... and switches this on
    soundtrack_source: gr.Radio  # the Music tab's "Send to Video" sets "file" ...
    soundtrack_file: SafeAudioPath  # ... and its WAV here


def build(ctx: StudioContext) -> VideoPage:
    pipeline = VideoPipeline(ctx.registry, ctx.store, ctx.settings.art_model)
    art_default = ctx.settings.art_model or ctx.registry.default_id(ART_TASK)
    art_models = art_model_choices(ctx)
    t2v_models = [(e.display, e.id) for e in ctx.registry.entries(T2V_TASK)]

    with gr.Blocks() as blocks:
        gr.Markdown(
            f"Limits per job: clips are processed up to **{LIMITS.max_seconds:g} s** and **{LIMITS.max_side} px** "
            f"on the long side at ≤ **{LIMITS.max_fps:g} fps** (longer or larger uploads are trimmed and "
            f"downscaled, with a notice); animations up to **{MAX_FRAMES} frames** and **{MAX_KEYFRAMES} keyframes**. "
            "Odd sizes are cropped by 1 px to even (H.264). Output: H.264 MP4 that plays in any browser."
        )
        with gr.Accordion("Style (for Stylize, and for Animate when 'Style every frame' is on)", open=False):
            style = StyleControls.build(NUM_STYLES, FILTERS)
        with gr.Tabs(selected="video-stylize", overflow_behavior="wrap", elem_id="video-tabs") as sections:
            # -- 1. stylize a clip ---------------------------------------------------------------
            with gr.Tab("Stylize a clip", id="video-stylize"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=5, min_width=320):
                        clip = SafeVideo(label="Clip", sources=["upload"], elem_id="video-clip", height=260)
                        consistency = gr.Slider(
                            0,
                            1,
                            value=0.8,
                            step=0.05,
                            label="Consistency (0 = frame by frame, less flicker →)",
                        )
                        with gr.Row():
                            size = gr.Slider(
                                0, LIMITS.max_side, value=512, step=16, label="Output long side (0 = clip's)"
                            )
                            fps = gr.Slider(0, LIMITS.max_fps, value=0, step=1, label="FPS (0 = clip's)")
                        with gr.Row():
                            start = gr.Number(0, label="Start (s)", minimum=0)
                            end = gr.Number(0, label="End (s, 0 = to the end)", minimum=0)
                        keep_audio = gr.Checkbox(True, label="Keep the clip's audio")
                        with gr.Row():
                            stylize_btn = gr.Button(
                                "Stylize clip", variant="primary", scale=3, elem_id="video-stylize-run"
                            )
                            stylize_stop = gr.Button("Stop", variant="stop", scale=1)
                    with gr.Column(scale=6, min_width=320):
                        stylize_preview = gr.Image(label="Preview", type="pil", interactive=False, height=300)
                        stylize_progress = progress_panel("video-stylize-progress")
                        stylize_status = gr.Textbox(
                            label="Status", interactive=False, elem_id="video-stylize-status"
                        )
                        stylize_video = gr.Video(
                            label="Result", interactive=False, elem_id="video-stylize-result"
                        )
            # -- 2. animate ----------------------------------------------------------------------
            with gr.Tab("Animate", id="video-animate"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=5, min_width=320):
                        art_model = gr.Dropdown(
                            art_models, value=art_default, label="Art model", allow_custom_value=True
                        )
                        keyframes = gr.Textbox(
                            label="Keyframes: one per line, 'prompt | seed' (a line '| seed' keeps the prompt above)",
                            lines=4,
                            value=EXAMPLE_KEYFRAMES,
                            elem_id="video-keyframes",
                        )
                        negative = gr.Textbox(label="Negative prompt", lines=1)
                        with gr.Row():
                            frames = gr.Slider(
                                2, MAX_FRAMES, value=16, step=1, label="Frames", elem_id="video-frames"
                            )
                            anim_fps = gr.Slider(1, 30, value=8, step=1, label="FPS")
                        with gr.Row():
                            steps = gr.Slider(
                                1, 50, value=20, step=1, label="DDIM steps per frame", elem_id="video-steps"
                            )
                            cfg = gr.Slider(0, 30, value=2.0, step=0.5, label="CFG scale")
                        with gr.Row():
                            base_seed = gr.Textbox("-1", label="Seed for lines without one (-1 = random)")
                            interpolation = gr.Radio(
                                list(INTERPOLATIONS), value="slerp", label="Text interpolation"
                            )
                        with gr.Row():
                            animate_style = gr.Checkbox(
                                False,
                                label="Style every frame (settings above)",
                                elem_id="video-animate-style",
                            )
                            smoothing = gr.Slider(
                                0, 1, value=0.0, step=0.05, label="Flow smoothing (0 = off)"
                            )
                        with gr.Accordion("Soundtrack", open=False):
                            sound_source = gr.Radio(
                                SOUNDTRACK_SOURCES, value="none", label="Source", elem_id="video-sound-source"
                            )
                            with gr.Row():
                                sound_history = gr.Dropdown(
                                    list(iter_history_choices(ctx.store)), label="Music from History", scale=4
                                )
                                sound_refresh = gr.Button("Refresh", size="sm", scale=1)
                            sound_file = SafeAudioPath(
                                label="Audio file", type="filepath", sources=["upload"]
                            )
                            with gr.Row():
                                compose_style = gr.Dropdown(
                                    list(MUSIC_STYLES), value="folk", label="Compose: style"
                                )
                                compose_bars = gr.Slider(1, 32, value=4, step=1, label="Compose: bars")
                            sound_fit = gr.Radio(
                                FITS, value="trim", label="Length", elem_id="video-sound-fit"
                            )
                            fade = gr.Slider(0, 10, value=1.0, step=0.5, label="Fade-out (s)")
                        with gr.Row():
                            animate_btn = gr.Button(
                                "Animate", variant="primary", scale=3, elem_id="video-animate-run"
                            )
                            animate_stop = gr.Button("Stop", variant="stop", scale=1)
                    with gr.Column(scale=6, min_width=320):
                        animate_preview = gr.Image(
                            label="Preview",
                            type="pil",
                            format="png",
                            interactive=False,
                            height=300,
                            elem_id="video-animate-preview",
                        )
                        animate_progress = progress_panel("video-animate-progress")
                        animate_status = gr.Textbox(
                            label="Status", interactive=False, elem_id="video-animate-status"
                        )
                        animate_video = gr.Video(
                            label="Result", interactive=False, elem_id="video-animate-result"
                        )
            # -- 3. text-to-video (hub) ----------------------------------------------------------
            with gr.Tab("Text-to-video", id="video-t2v"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=5, min_width=320):
                        t2v_model = gr.Dropdown(
                            t2v_models,
                            value=ctx.registry.default_id(T2V_TASK),
                            label="Model",
                            info="A hub AnimateDiff motion adapter or text-to-video-ms id (needs network); the debug model makes noise",
                            allow_custom_value=True,
                        )
                        t2v_prompt = gr.Textbox(
                            label="Prompt", lines=2, placeholder="a paper boat drifting on a pond"
                        )
                        t2v_negative = gr.Textbox(label="Negative prompt", lines=1)
                        with gr.Row():
                            t2v_frames = gr.Slider(2, 32, value=8, step=1, label="Frames")
                            t2v_fps = gr.Slider(1, 30, value=8, step=1, label="FPS")
                        with gr.Row():
                            t2v_steps = gr.Slider(1, 100, value=10, step=1, label="Steps")
                            t2v_cfg = gr.Slider(0, 30, value=7.5, step=0.5, label="CFG scale")
                        with gr.Row():
                            t2v_seed = gr.Textbox("-1", label="Seed (-1 = random)")
                            t2v_size = gr.Slider(0, 768, value=0, step=8, label="Size (0 = native)")
                        with gr.Row():
                            t2v_btn = gr.Button(
                                "Generate video", variant="primary", scale=3, elem_id="video-t2v-run"
                            )
                            t2v_stop = gr.Button("Stop", variant="stop", scale=1)
                    with gr.Column(scale=6, min_width=320):
                        t2v_preview = gr.Image(
                            label="Preview (middle frame)", type="pil", interactive=False, height=300
                        )
                        t2v_progress = progress_panel("video-t2v-progress")
                        t2v_status = gr.Textbox(label="Status", interactive=False, elem_id="video-t2v-status")
                        t2v_video = gr.Video(label="Result", interactive=False, elem_id="video-t2v-result")
        with gr.Accordion("History", open=False):
            with gr.Row():
                history_refresh = gr.Button("Refresh history", size="sm")
                history_id = gr.Number(None, precision=0, label="History id", minimum=0)
                history_show = gr.Button("Show", size="sm")
            history = gr.Dataframe(
                [], headers=["id", "when", "kind", "title", "frames", "seconds"],
                interactive=False, label="Saved videos", elem_id="video-history",
            )  # fmt: skip
            with gr.Row():
                history_video = gr.Video(label="Selected video", interactive=False)
                history_params = gr.JSON(label="Its parameters")

        # -- handlers ------------------------------------------------------------------------------
        def run(
            events: Iterator[Any], progress: gr.Progress, label: str, request: gr.Request
        ) -> Iterator[tuple[Any, Any, Any]]:
            """Pipeline events -> (preview, status, video) updates; the saved video is this requester's."""
            for event in follow(events, progress, ctx, request):
                if isinstance(event, Step) and event.preview is not None:
                    eta = f" · ETA {event.eta_s:.0f}s" if event.eta_s is not None else ""
                    frame = event.info.get("frame")
                    where = f"frame {frame} · " if frame else ""
                    status = f"{label}… {where}step {event.index}/{event.total}{eta}"
                    yield display_size(event.preview), status, gr.skip()
                elif isinstance(event, Finished):
                    yield finished(event.result, request)

        def finished(result: Any, request: gr.Request) -> tuple[Any, Any, Any]:
            poster = getattr(result, "last_frame", None)
            if result.path is None:
                return (
                    display_size(poster) if poster is not None else gr.skip(),
                    "Stopped; nothing was saved.",
                    gr.skip(),
                )
            stopped = " (stopped early: the finished frames were saved)" if result.cancelled else ""
            sound = getattr(result, "soundtrack", None) or (
                "clip audio" if getattr(result, "has_audio", False) else ""
            )
            status = (
                f"Saved #{result.record_id}: {result.frames} frames · {result.fps:g} fps · "
                f"{result.size[0]}×{result.size[1]}{' · sound: ' + sound if sound else ''}{stopped}"
            )
            video = served(ctx, request, result.path)  # an unguessable per-owner link, not the output path
            return display_size(poster) if poster is not None else gr.skip(), status, video

        @friendly_errors
        def stylize(
            clip_path: str | None, weight: float, side: float, rate: float, t0: Any, t1: Any, audio: bool,
            s_mode: str, s_style: Any, s_blend: str, s_image: str | None, s_filter: str, s_amount: float,
            s_strength: float, s_preserve: bool, request: gr.Request, progress: gr.Progress = gr.Progress(),
        ) -> Iterator[tuple[Any, ...]]:  # fmt: skip
            if not clip_path:
                raise UserError("Upload a video clip first.")
            job = StylizeRequest(
                clip=clip_path,
                style=style_request(
                    s_mode, s_style, s_blend, s_image, s_filter, s_amount, s_strength, s_preserve
                ),
                consistency=float(weight),
                size=whole(side, "Output size"),
                fps=float(rate or 0),
                start=float(t0 or 0),
                end=float(t1 or 0),
                keep_audio=bool(audio),
            )
            try:
                with ctx.jobs.job(session_key(request), on_wait=turn_label(progress)) as cancel:
                    yield from run(pipeline.stylize(job, cancel), progress, "Stylizing", request)
            finally:
                discard_uploads(ctx, clip_path, s_image)  # big uploads go once the job ends

        @friendly_errors
        def animate(
            model_id: str, key_text: str, negative_text: str, n_frames: float, rate: float, n_steps: float,
            cfg_scale: float, seed_text: str, interp: str, use_style: bool, smooth: float, source: str,
            history_choice: Any, audio_path: str | None, music_style: str, bars: float, fit: str, fade_s: float,
            s_mode: str, s_style: Any, s_blend: str, s_image: str | None, s_filter: str, s_amount: float,
            s_strength: float, s_preserve: bool, request: gr.Request, progress: gr.Progress = gr.Progress(),
        ) -> Iterator[tuple[Any, ...]]:  # fmt: skip
            soundtrack = SoundtrackRequest(
                source=source or "none",
                record_id=int(history_choice) if history_choice not in (None, "") else None,
                audio_path=audio_path,
                compose=ComposeRequest(style=music_style, bars=whole(bars, "Bars"), seed=-1),
                fit=fit or "trim",
                fade_s=float(fade_s),
                owner=viewer(ctx, request),
            )
            job = AnimateRequest(
                keyframes=parse_keyframes(key_text, seed_text),
                negative_prompt=negative_text or "",
                model_id=model_id or "",
                frames=whole(n_frames, "Frames"),
                fps=float(rate),
                steps=whole(n_steps, "Steps"),
                guidance_scale=float(cfg_scale),
                interpolation=interp or "slerp",
                style=style_request(
                    s_mode, s_style, s_blend, s_image, s_filter, s_amount, s_strength, s_preserve
                )
                if use_style
                else None,
                smoothing=float(smooth or 0),
                soundtrack=soundtrack,
            )
            try:
                with ctx.jobs.job(session_key(request), on_wait=turn_label(progress)) as cancel:
                    yield from run(pipeline.animate(job, cancel), progress, "Animating", request)
            finally:
                discard_uploads(ctx, audio_path, s_image)  # big uploads go once the job ends

        @friendly_errors
        def text_to_video(
            model_id: str, prompt_text: str, negative_text: str, n_frames: float, rate: float, n_steps: float,
            cfg_scale: float, seed_text: str, side: float, request: gr.Request, progress: gr.Progress = gr.Progress(),
        ) -> Iterator[tuple[Any, ...]]:  # fmt: skip
            job = TextToVideoRequest(
                prompt=prompt_text or "",
                negative_prompt=negative_text or "",
                model_id=model_id or "",
                frames=whole(n_frames, "Frames"),
                fps=float(rate),
                steps=whole(n_steps, "Steps"),
                guidance_scale=float(cfg_scale),
                seed=seed_text if seed_text not in (None, "") else -1,
                width=whole(side, "Size"),
                height=whole(side, "Size"),
            )
            with ctx.jobs.job(session_key(request), on_wait=turn_label(progress)) as cancel:
                yield from run(pipeline.text_to_video(job, cancel), progress, "Generating", request)

        heavy = dict(concurrency_id=HEAVY, concurrency_limit=HEAVY_ADMISSION)
        stylize_event = stylize_btn.click(
            stylize,
            [clip, consistency, size, fps, start, end, keep_audio, *style.inputs],
            [stylize_preview, stylize_status, stylize_video],
            api_name="video_stylize",
            **heavy,
            # Gradio's bar in a panel of its own: the preview and the status text stay uncovered
            **progress_on(stylize_progress, "full"),
        )
        animate_event = animate_btn.click(
            animate,
            [
                art_model, keyframes, negative, frames, anim_fps, steps, cfg, base_seed, interpolation,
                animate_style, smoothing, sound_source, sound_history, sound_file, compose_style,
                compose_bars, sound_fit, fade, *style.inputs,
            ],
            [animate_preview, animate_status, animate_video],
            api_name="video_animate",
            **heavy,
            **progress_on(animate_progress, "full"),
        )  # fmt: skip
        t2v_event = t2v_btn.click(
            text_to_video,
            [
                t2v_model,
                t2v_prompt,
                t2v_negative,
                t2v_frames,
                t2v_fps,
                t2v_steps,
                t2v_cfg,
                t2v_seed,
                t2v_size,
            ],
            [t2v_preview, t2v_status, t2v_video],
            api_name="video_text_to_video",
            **heavy,
            **progress_on(t2v_progress, "full"),
        )
        stop = make_stop_handler(ctx)
        stylize_stop.click(stop, None, None, api_name="video_stop", cancels=[stylize_event])
        animate_stop.click(stop, None, None, api_name=False, cancels=[animate_event])
        t2v_stop.click(stop, None, None, api_name=False, cancels=[t2v_event])

        def music_choices(request: gr.Request) -> Any:
            return gr.Dropdown(choices=list(iter_history_choices(ctx.store, owner=viewer(ctx, request))))

        sound_refresh.click(music_choices, None, sound_history, api_name="video_music_choices")
        sound_source.change(music_choices, None, sound_history, api_name=False)

        @friendly_errors
        def show(record_id: Any, request: gr.Request) -> tuple[Any, Any]:
            try:
                wanted = int(record_id)
            except (TypeError, ValueError):
                wanted = None
            record = ctx.store.get(wanted, owner=viewer(ctx, request)) if wanted is not None else None
            if record is None or record.task != TASK or not record.files:
                raise UserError("Give the id of one of your saved videos (see the History table).")
            return served(ctx, request, record.files[0]), record.params

        def history_table(request: gr.Request) -> list[list[Any]]:
            return history_rows(visible_history(ctx, request, TASK, 50))

        def select_row(evt: gr.SelectData, rows: Any) -> Any:
            row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
            try:
                return int(rows.iloc[row, 0]) if hasattr(rows, "iloc") else int(rows[row][0])
            except (IndexError, ValueError, TypeError, KeyError):
                return None

        history_refresh.click(history_table, None, history, api_name="video_history")
        history_show.click(show, history_id, [history_video, history_params], api_name="video_history_item")
        history.select(select_row, history, history_id, api_name=False)
        blocks.load(history_table, None, history, api_name=False)  # each visitor sees their own videos
        for done in (stylize_event, animate_event, t2v_event):
            done.then(history_table, None, history, api_name=False)

    return VideoPage(blocks, sections, keyframes, art_model, style, animate_style, sound_source, sound_file)


def display_size(image: Any, side: int = 256) -> Any:
    """Small frames (32-64 px models) are shown enlarged, with hard pixel edges."""
    if image is None or max(image.size) >= side:
        return image
    factor = max(1, side // max(image.size))
    return image.resize((image.width * factor, image.height * factor), Image.NEAREST)


if __name__ == "__main__":
    from pipelines.art import register_art_models
    from pipelines.music import register_music_models
    from pipelines.style import register_style_models
    from pipelines.video import register_video_models
    from studio.settings import Settings

    standalone = StudioContext.create(Settings.from_env())
    for register in (
        register_art_models,
        register_music_models,
        register_style_models,
        register_video_models,
    ):
        register(standalone.registry, standalone.settings.data_dir)
    build(standalone).blocks.launch()
