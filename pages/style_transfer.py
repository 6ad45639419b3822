"""Style Transfer tab: 26 blendable styles, any style image, high-quality Gatys, instant filters."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from pages.common import (
    HEAVY,
    HEAVY_ADMISSION,
    follow,
    friendly_errors,
    history_gallery,
    make_stop_handler,
    progress_html,
    progress_on,
    progress_panel,
    session_key,
    status_html,
    status_line,
    turn_label,
)
from pages.serving import discard_uploads, served, visible_history
from pipelines.style import (
    FILTERS,
    NUM_STYLES,
    TASK,
    StyleMode,
    StylePipeline,
    StyleRequest,
    StyleResult,
    limits_for,
    parse_blend,
    style_label,
    thumbnail_paths,
)
from studio.context import StudioContext
from studio.events import Finished, Step, UserError
from studio.jobs import HEAVY_LANE

HISTORY_SIZE = 48
FAST_CONCURRENCY = "style-fast"  # the ONNX modes take a second: they never wait behind a diffusion job
MODES = [
    ("26 styles (fast)", StyleMode.PRESET.value),
    ("Any style image (fast)", StyleMode.IMAGE.value),
    ("High quality (Gatys · slow)", StyleMode.GATYS.value),
    ("Instant filter", StyleMode.FILTER.value),
]
NO_BLEND = -1


class UploadedImage(gr.Image):
    """A gr.Image that hands the uploaded file over as a path without decoding it.

    gr.Image decodes every upload with PIL before the handler runs, so a zero-byte, corrupt or
    20000x20000 file fails inside gradio with a raw UnidentifiedImageError/DecompressionBombError.
    Handing over the path lets the pipeline's loader judge the file and answer with a UserError
    (and decode huge JPEGs at reduced scale). Unlike pages.common.SafeImage, nothing is decoded
    here at all: PIL's bomb guard would otherwise raise DecompressionBombError inside gradio.
    """

    def get_block_name(self) -> str:
        return "image"  # the stock gr.Image front-end

    def preprocess(self, payload: Any) -> Any:
        if payload is None or self.type != "filepath" or payload.path is None:
            return super().preprocess(payload)
        return str(payload.path)


@dataclass
class StylePage:
    blocks: gr.Blocks
    content_image: (
        UploadedImage  # a gr.Image; the Art Platform's "Send to Style Transfer" fills it (a file path)
    )
    send_to_video: gr.Button | None = None  # the app wires it: `video_settings` -> `settings_for_video(...)`
    video_settings: list | None = (
        None  # mode, style, blend with/amount/text, style image, filter, amount, strength, preserve
    )


def build(ctx: StudioContext) -> StylePage:
    pipeline = StylePipeline(ctx.registry, ctx.store)
    limits = limits_for(ctx.plan)
    thumbs = [
        (str(p), style_label(k)) for k, p in enumerate(thumbnail_paths(ctx.registry, ctx.settings.data_dir))
    ]
    style_choices = [(style_label(k), k) for k in range(NUM_STYLES)]
    gatys_default = min(256, limits.gatys_side)

    with gr.Blocks() as blocks:
        with gr.Row(equal_height=False):
            # -- inputs --------------------------------------------------------------------------
            with gr.Column(scale=5, min_width=320):
                content = UploadedImage(
                    label="Content image",
                    type="filepath",
                    sources=["upload", "clipboard"],
                    elem_id="style-content",
                    image_mode=None,  # keep alpha and grayscale as uploaded; the pipeline handles them
                    height=260,
                )
                mode = gr.Radio(MODES, value=StyleMode.PRESET.value, label="Mode", elem_id="style-mode")
                with gr.Group(visible=True) as preset_group:
                    gallery = gr.Gallery(
                        thumbs,
                        label="Styles (click one)",
                        columns=4,  # studio.css lets the grid fit as many ~96 px columns as the box holds
                        height=340,  # the box scrolls: every style reachable, none clipped
                        allow_preview=False,
                        object_fit="contain",
                        fit_columns=False,
                        elem_id="style-gallery",
                    )
                    with gr.Row():
                        style = gr.Dropdown(style_choices, value=0, label="Style", min_width=120)
                        blend_with = gr.Dropdown(
                            [("none", NO_BLEND), *style_choices],
                            value=NO_BLEND,
                            label="Blend with",
                            min_width=120,
                        )
                        blend_amount = gr.Slider(
                            0, 1, value=0.5, step=0.05, label="Blend amount", min_width=120
                        )
                    blend_text = gr.Textbox(
                        label="Advanced blend (overrides the above)",
                        placeholder="3:0.5, 12:0.3, 19:0.2",
                        max_lines=1,
                    )
                with gr.Group(visible=False) as style_group:
                    style_image = UploadedImage(
                        label="Style image (a painting, a texture …)",
                        type="filepath",
                        sources=["upload", "clipboard"],
                        elem_id="style-image",
                        image_mode=None,
                        height=200,
                    )
                with gr.Group(visible=False) as image_group:
                    detail = gr.Slider(
                        0,
                        limits.max_side,
                        value=768,
                        step=64,
                        label="Detail: working size in px (≤ 384 = the network's broad strokes, upscaled)",
                        elem_id="style-detail",
                    )
                with gr.Group(visible=False) as gatys_group:
                    with gr.Row():
                        iterations = gr.Slider(
                            1,
                            1000,
                            value=100,
                            step=1,
                            label="Iterations",
                            min_width=140,
                            elem_id="style-iterations",
                        )
                        gatys_size = gr.Slider(
                            32,
                            limits.gatys_side,
                            value=gatys_default,
                            step=32,
                            label=f"Working size (≤ {limits.gatys_side} px on this device)",
                            min_width=140,
                            elem_id="style-gatys-size",
                        )
                    with gr.Row():
                        content_weight = gr.Slider(
                            0, 10, value=1.0, step=0.1, label="Content weight", min_width=140
                        )
                        style_weight = gr.Slider(
                            0, 20000, value=500, step=50, label="Style weight", min_width=140
                        )
                    with gr.Row():
                        tv_weight = gr.Slider(
                            0, 0.1, value=0.001, step=0.001, label="Smoothness (TV)", min_width=140
                        )
                        preview_every = gr.Slider(
                            0,
                            50,
                            value=5,
                            step=1,
                            label="Preview every N",
                            min_width=140,
                            elem_id="style-preview-every",
                        )
                with gr.Group(visible=False) as filter_group:
                    with gr.Row():
                        filter_name = gr.Dropdown(
                            [(spec.label, key) for key, spec in FILTERS.items()],
                            value="stylization",
                            label="Filter",
                        )
                        filter_amount = gr.Slider(0, 1, value=0.5, step=0.05, label="Amount")
                with gr.Row():
                    strength = gr.Slider(0, 1, value=1.0, step=0.05, label="Strength", min_width=140)
                    size = gr.Slider(
                        0,
                        limits.max_side,
                        value=0,
                        step=16,
                        label="Output long side (0 = content size)",
                        min_width=140,
                    )
                preserve = gr.Checkbox(label="Preserve original colours (transfer luminance only)")
                with gr.Row():
                    run_btn = gr.Button("Stylize", variant="primary", scale=3, elem_id="style-run")
                    hq_btn = gr.Button(
                        "Start high quality",
                        variant="primary",
                        scale=3,
                        visible=False,
                        elem_id="style-run-hq",
                    )
                    stop_btn = gr.Button("Stop", variant="stop", scale=1)
            # -- outputs -------------------------------------------------------------------------
            with gr.Column(scale=6, min_width=320):
                progress = progress_panel("style-progress", "Ready.")
                compare = gr.ImageSlider(
                    label="Before / after", type="filepath", elem_id="style-compare", max_height=480
                )
                result = gr.Image(
                    label="Result",
                    type="filepath",
                    format="png",
                    interactive=False,
                    elem_id="style-result",
                    height=320,
                )
                info = gr.Textbox(label="Parameters", lines=3, interactive=False, elem_id="style-info")
                send_to_video = gr.Button("Send style to Video", size="sm", elem_id="style-to-video")
        with gr.Accordion("History", open=False):
            refresh_btn = gr.Button("Refresh history", size="sm")
            history = history_gallery("style-history")
        gr.Markdown(status_line(ctx), elem_classes=["studio-status-line"])
        with gr.Accordion("Size limits on this device", open=False):
            gr.Markdown(
                f"Fast output up to {limits.max_side:,} px (tiled above {int(limits.untiled_pixels**0.5):,}²)"
                f" · high quality up to {limits.gatys_side} px"
            )

        # -- handlers ----------------------------------------------------------------------------
        def pick_thumbnail(evt: gr.SelectData) -> int:
            return int(evt.index)

        def switch_mode(value: str) -> tuple[Any, ...]:
            chosen = StyleMode(value)
            return (
                gr.update(visible=chosen is StyleMode.PRESET),
                gr.update(visible=chosen in (StyleMode.IMAGE, StyleMode.GATYS)),
                gr.update(visible=chosen is StyleMode.IMAGE),
                gr.update(visible=chosen is StyleMode.GATYS),
                gr.update(visible=chosen is StyleMode.FILTER),
                gr.update(visible=chosen is not StyleMode.GATYS),
                gr.update(visible=chosen is StyleMode.GATYS),
            )

        @friendly_errors
        def stylize(
            content_path: str | None,
            mode_value: str,
            style_index: float,
            blend_index: float,
            amount: float,
            blend_spec: str,
            style_path: str | None,
            n_iterations: float,
            work_size: float,
            w_content: float,
            w_style: float,
            w_tv: float,
            every: float,
            filter_key: str,
            filter_strength: float,
            strength_value: float,
            out_size: float,
            keep_colours: bool,
            detail_side: float,
            request: gr.Request,
            progress: gr.Progress = gr.Progress(),
        ) -> Iterator[tuple[Any, ...]]:
            if not content_path:
                raise UserError("Upload a content image first (or send one from the Art Platform).")
            style_request = StyleRequest(
                content=content_path,
                mode=StyleMode(mode_value),
                styles=blend_weights(style_index, blend_index, amount, blend_spec),
                style_image=style_path or None,
                filter_name=filter_key,
                filter_amount=float(filter_amount_or(filter_strength)),
                strength=float(strength_value),
                preserve_colors=bool(keep_colours),
                size=int(out_size or 0),
                detail=int(detail_side or 0),
                iterations=int(n_iterations),
                content_weight=float(w_content),
                style_weight=float(w_style),
                tv_weight=float(w_tv),
                gatys_size=int(work_size),
                preview_every=int(every or 0),
            )
            try:
                # Gatys is heavy and takes its fair turn; the fast modes run beside it
                lane = HEAVY_LANE if style_request.mode is StyleMode.GATYS else None
                with ctx.jobs.job(session_key(request), lane, turn_label(progress)) as cancel:
                    for event in follow(pipeline.generate(style_request, cancel), progress, ctx, request):
                        if isinstance(event, Step) and event.preview is not None:
                            loss = event.info.get("loss")
                            detail = f"loss {loss:.3g}" if loss else ""
                            bar = progress_html(event.index, event.total, "Iteration", detail)
                            yield (content_path, event.preview), gr.skip(), gr.skip(), bar
                        elif isinstance(event, Finished):
                            yield finished(event.result, content_path, request)
            finally:
                # a big style image goes once the job ends; the content stays (the comparison shows it)
                discard_uploads(ctx, style_path)

        def finished(outcome: StyleResult, content_path: str, request: gr.Request) -> tuple[Any, ...]:
            if outcome.cancelled:
                note = f"Stopped after {len(outcome.losses)} iterations (not saved).\n{outcome.parameters}"
                return (content_path, outcome.image), gr.skip(), note, status_html("Stopped (not saved).")
            saved = (
                f"Saved to History (#{outcome.record_id}) in {outcome.seconds:.2f}s.\n{outcome.parameters}"
            )
            link = served(ctx, request, outcome.path)  # a link in Gradio's cache, not a second copy
            done = status_html(f"Done in {outcome.seconds:.2f}s: saved as #{outcome.record_id}")
            return (content_path, link), link, saved, done

        inputs = [
            content,
            mode,
            style,
            blend_with,
            blend_amount,
            blend_text,
            style_image,
            iterations,
            gatys_size,
            content_weight,
            style_weight,
            tv_weight,
            preview_every,
            filter_name,
            filter_amount,
            strength,
            size,
            preserve,
            detail,
        ]
        outputs = [compare, result, info, progress]
        fast_event = run_btn.click(
            stylize,
            inputs,
            outputs,
            api_name="style_transfer",
            concurrency_id=FAST_CONCURRENCY,
            concurrency_limit=2,
            **progress_on(progress),  # the before/after, result and parameters stay uncovered
        )
        hq_event = hq_btn.click(
            stylize,
            inputs,
            outputs,
            api_name="style_transfer_hq",
            concurrency_id=HEAVY,
            concurrency_limit=HEAVY_ADMISSION,
            **progress_on(progress),
        )
        stop_btn.click(
            make_stop_handler(ctx), None, None, api_name="style_stop", cancels=[fast_event, hq_event]
        )
        gallery.select(pick_thumbnail, None, style, api_name=False)
        mode.change(
            switch_mode,
            mode,
            [preset_group, style_group, image_group, gatys_group, filter_group, run_btn, hq_btn],
            api_name=False,
        )

        def load_history(request: gr.Request) -> list[tuple[str, str]]:
            return [
                (served(ctx, request, record.files[0]), f"#{record.id} · {record.title[:60]}")
                for record in visible_history(ctx, request, TASK, HISTORY_SIZE)
                if record.files
            ]

        refresh_btn.click(load_history, None, history, api_name="style_history")
        blocks.load(load_history, None, history, api_name=False)
        result.change(load_history, None, history, api_name=False)

    video_settings = [mode, style, blend_with, blend_amount, blend_text, style_image, filter_name]
    video_settings += [filter_amount, strength, preserve]
    return StylePage(blocks, content, send_to_video, video_settings)


def settings_for_video(
    mode: str, style: Any, blend_with: Any, amount: float, spec: str, image: str | None,
    filter_name: str, filter_value: Any, strength: float, preserve: bool,
) -> dict[str, Any]:  # fmt: skip
    """The Style tab's current settings (StylePage.video_settings) as a dict for the Video tab."""
    return {
        "mode": mode,
        "styles": {str(k): v for k, v in blend_weights(style, blend_with, amount, spec).items()},
        "style_image": image,
        "filter_name": filter_name,
        "filter_amount": filter_amount_or(filter_value),
        "strength": strength,
        "preserve_colors": bool(preserve),
    }


def blend_weights(style_index: Any, blend_index: Any, amount: float, spec: str) -> dict[int, float]:
    """The advanced text wins; else the chosen style, optionally blended with a second one."""
    if spec and spec.strip():
        weights = parse_blend(spec)
        if not weights or sum(weights.values()) <= 0:
            raise UserError("The advanced blend has no weight above 0; write it like '3:0.5, 12:0.5'.")
        return weights
    first = int(style_index if style_index is not None else 0)
    second = int(blend_index if blend_index is not None else NO_BLEND)
    if second == NO_BLEND or second == first or float(amount) <= 0:
        return {first: 1.0}
    if float(amount) >= 1:
        return {second: 1.0}
    return {first: 1.0 - float(amount), second: float(amount)}


def filter_amount_or(value: Any) -> float:
    return 0.5 if value is None else float(value)


if __name__ == "__main__":
    from pipelines.style import register_style_models
    from studio.settings import Settings

    standalone = StudioContext.create(Settings.from_env())
    register_style_models(standalone.registry, standalone.settings.data_dir)
    build(standalone).blocks.launch()
