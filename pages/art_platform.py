"""Art Platform tab: text-to-image and img2img with live denoising previews, history and reuse."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from pages.art_depth import (
    GenerationExtras,
    InpaintControls,
    build_generation_extras,
    build_inpaint,
    clip_options,
    editor_value,
    hires_options,
    inpaint_request_parts,
    lora_specs,
)
from pages.art_models import art_model_choices, render_vocabulary
from pages.art_tools import ArtControls, render_prompt_tools, render_tools
from pages.common import (
    HEAVY,
    HEAVY_ADMISSION,
    SafeImage,
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
from pages.serving import served, viewer, visible_history
from pipelines.art import SAMPLERS, TASK, UPSCALE_MODES, ArtPipeline, ArtRequest, ArtResult, load_init_image
from studio.context import StudioContext
from studio.events import Finished, Step, UserError
from studio.inputs import parse_seed

# quick starts in the offline model's vocabulary (colours, shapes, counts, positions, skies);
# a hub SD model takes any prompt
EXAMPLES = [
    ["two yellow stars in the night sky", "", "DDIM", 25, 2.0],
    ["a red circle in the middle in a blue sky", "", "DDIM", 25, 2.0],
    ["three blue squares at sunset", "", "DPM++ 2M", 20, 2.0],
    ["a lighthouse on a cliff at dusk, oil painting", "blurry, low quality", "DPM++ 2M", 25, 7.0],
]
HISTORY_SIZE = 48
log = logging.getLogger(__name__)


@dataclass
class ArtPage:
    blocks: gr.Blocks
    result_image: gr.Image  # the latest finished image (file path), for "Send to …" wiring
    send_to_style: gr.Button  # the app wires it to the Style Transfer tab when that tab exists
    inpaint: InpaintControls  # inpaint/outpaint editor and options (art_depth)
    extras: GenerationExtras  # hires fix (art_depth)
    send_to_video: gr.Button | None = None  # the app wires it: last image's prompt + seed -> a Video keyframe
    model: gr.Dropdown | None = None  # the model that drew it (the keyframe's seed belongs to it)


def build(ctx: StudioContext) -> ArtPage:
    pipeline = ArtPipeline(
        ctx.registry, ctx.store, ctx.settings.art_model, lora_dir=ctx.settings.data_dir / "loras"
    )
    default_model = ctx.settings.art_model or ctx.registry.default_id(TASK)
    start = recommended_settings(ctx, default_model)

    with gr.Blocks() as blocks:
        with gr.Row(equal_height=False):
            # -- inputs --------------------------------------------------------------------------
            with gr.Column(scale=5, min_width=320):
                model = gr.Dropdown(
                    art_model_choices(ctx),
                    value=default_model,
                    label="Model",
                    info="Pick one, or type any Hugging Face hub id or local folder",
                    allow_custom_value=True,
                    elem_id="art-model",
                )
                render_vocabulary(ctx, model)  # what a bundled model knows; hidden for hub models
                prompt = gr.Textbox(label="Prompt", lines=3, placeholder="a lighthouse on a cliff at dusk")
                negative = gr.Textbox(label="Negative prompt", lines=1)
                prompt_tools = render_prompt_tools(ctx, prompt, negative)  # styles + expansion (art_tools)
                with gr.Row():
                    generate_btn = gr.Button("Generate", variant="primary", scale=3)
                    stop_btn = gr.Button("Stop", variant="stop", scale=1)
                with gr.Accordion("Sampling", open=True):
                    with gr.Row():
                        sampler = gr.Dropdown(
                            list(SAMPLERS), value=start["sampler"], label="Sampler", min_width=140
                        )
                        steps = gr.Slider(
                            1,
                            150,
                            value=start["steps"],
                            step=1,
                            label="Steps",
                            min_width=140,
                            elem_id="art-steps",
                        )
                    with gr.Row():
                        cfg = gr.Slider(
                            0, 30, value=start["guidance_scale"], step=0.5, label="CFG scale", min_width=140
                        )
                        batch = gr.Slider(1, 16, value=1, step=1, label="Batch count", min_width=140)
                    with gr.Row():
                        width = gr.Slider(0, 2048, value=0, step=8, label="Width (0 = native)", min_width=140)
                        height = gr.Slider(
                            0, 2048, value=0, step=8, label="Height (0 = native)", min_width=140
                        )
                    with gr.Row():
                        seed = gr.Textbox(value="-1", label="Seed (-1 = random)", min_width=140, scale=3)
                        random_btn = gr.Button("Random", min_width=60, scale=0, size="sm")
                        reuse_seed_btn = gr.Button("Last", min_width=60, scale=0, size="sm")
                with gr.Accordion("Image to image", open=False):
                    init_image = SafeImage(
                        label="Init image", type="filepath", sources=["upload", "clipboard"]
                    )
                    strength = gr.Slider(0.05, 1.0, value=0.6, step=0.05, label="Denoising strength")
                extras = build_generation_extras()
                inpaint = build_inpaint()
                with gr.Accordion("Live preview", open=False):
                    preview_every = gr.Slider(0, 10, value=1, step=1, label="Linear preview every N steps")
                    full_every = gr.Slider(
                        0, 50, value=0, step=1, label="Full VAE decode every N steps (0 = off)"
                    )
                    upscale_mode = gr.Dropdown(
                        list(UPSCALE_MODES),
                        value="nearest",
                        label="Upscale (pixel-space models)",
                        info="nearest keeps the pixel-art look; lanczos smooths it",
                    )
            # -- outputs -------------------------------------------------------------------------
            with gr.Column(scale=6, min_width=320):
                progress = progress_panel("art-progress", "Ready: the preview forms here step by step.")
                preview = gr.Image(
                    label="Preview",
                    type="pil",
                    format="png",
                    interactive=False,
                    elem_id="art-preview",
                    height=420,
                )
                info = gr.Textbox(
                    label="Generation parameters", lines=3, interactive=False, elem_id="art-info"
                )
                with gr.Row():
                    send_to_style = gr.Button("Send to Style Transfer", size="sm")
                    send_to_video = gr.Button(
                        "Send to Video (as a keyframe)", size="sm", elem_id="art-to-video"
                    )
                    result_file = gr.Image(visible=False, type="filepath", label="Last result")
                gallery = gr.Gallery(
                    label="This session",
                    columns=4,
                    height=300,
                    object_fit="contain",
                    fit_columns=False,  # whole images, never cropped
                    preview=False,
                    elem_id="art-gallery",
                )
        with gr.Accordion("History", open=False):
            with gr.Row():
                refresh_btn = gr.Button("Refresh history", size="sm")
                reuse_btn = gr.Button("Reuse parameters", size="sm", variant="secondary")
            history = history_gallery("art-history")
            history_params = gr.JSON(label="Selected result's parameters")
        with gr.Accordion("PNG Info and X/Y/Z plot", open=False, elem_id="art-tools-accordion"):
            fields = [model, prompt, negative, sampler, steps, cfg, width, height, seed, init_image, strength]
            render_tools(ctx, ArtControls(*fields, styles=prompt_tools.styles, inpaint_image=inpaint.editor))
        plan_info = gr.Markdown(status_line(ctx), elem_id="art-status-line")
        gr.Examples(
            EXAMPLES,
            inputs=[prompt, negative, sampler, steps, cfg],
            label="Quick starts",
            example_labels=[row[0] for row in EXAMPLES],  # buttons that wrap, not a wide table
            elem_id="art-quick-starts",
        )

        session_results = gr.State([])  # [(path, caption)] of this session
        last_seed = gr.State(-1)
        selected_record = gr.Number(value=None, precision=0, visible=False, label="History id")

        # -- handlers ----------------------------------------------------------------------------
        @friendly_errors
        def generate(
            model_id: str,
            prompt_text: str,
            negative_text: str,
            sampler_name: str,
            n_steps: float,
            cfg_scale: float,
            w: float,
            h: float,
            seed_text: str,
            batch_count: float,
            init_path: str | None,
            denoise: float,
            every: float,
            full: float,
            upscale: str,
            results: list[tuple[str, str]],
            hires_on: bool,
            hires_scale: float,
            hires_upscaler: str,
            hires_steps: float,
            hires_strength: float,
            styles: list[str] | None,
            lora_text: str,
            clip_model: str,
            clip_scale: float,
            request: gr.Request,
            progress: gr.Progress = gr.Progress(),
        ) -> Iterator[tuple[Any, ...]]:
            art_request = ArtRequest(
                **shared_fields(
                    model_id,
                    prompt_text,
                    negative_text,
                    sampler_name,
                    n_steps,
                    cfg_scale,
                    w,
                    h,
                    seed_text,
                    batch_count,
                    denoise,
                    every,
                    full,
                    styles,
                    lora_text,
                ),  # fmt: skip
                init_image=load_init_image(init_path) if init_path else None,
                upscale_mode=upscale or "nearest",
                hires=hires_options(hires_on, hires_scale, hires_upscaler, hires_steps, hires_strength),
                clip=clip_options(clip_model, clip_scale),
            )
            yield from _stream(art_request, results, request, progress)

        @friendly_errors
        def inpaint_image(
            editor: Any,
            mask_blur: float,
            masked_content: str,
            only_masked: bool,
            padding: float,
            left: float,
            top: float,
            right: float,
            bottom: float,
            model_id: str,
            prompt_text: str,
            negative_text: str,
            sampler_name: str,
            n_steps: float,
            cfg_scale: float,
            w: float,
            h: float,
            seed_text: str,
            batch_count: float,
            denoise: float,
            every: float,
            full: float,
            results: list[tuple[str, str]],
            styles: list[str] | None,
            lora_text: str,
            request: gr.Request,
            progress: gr.Progress = gr.Progress(),
        ) -> Iterator[tuple[Any, ...]]:
            image, options = inpaint_request_parts(
                editor, mask_blur, masked_content, only_masked, padding, left, top, right, bottom
            )
            art_request = ArtRequest(
                **shared_fields(
                    model_id,
                    prompt_text,
                    negative_text,
                    sampler_name,
                    n_steps,
                    cfg_scale,
                    w,
                    h,
                    seed_text,
                    batch_count,
                    denoise,
                    every,
                    full,
                    styles,
                    lora_text,
                ),  # fmt: skip
                init_image=image,
                inpaint=options,
            )
            yield from _stream(art_request, results, request, progress)

        def _stream(
            art_request: ArtRequest, results: list[tuple[str, str]], request: gr.Request, progress: Any
        ) -> Iterator[tuple[Any, ...]]:
            with ctx.jobs.job(session_key(request), on_wait=turn_label(progress)) as cancel:
                for event in follow(pipeline.generate(art_request, cancel), progress, ctx, request):
                    if isinstance(event, Step) and event.preview is not None:
                        eta = f" · ETA {event.eta_s:.1f}s" if event.eta_s is not None else ""
                        status = f"Denoising… step {event.index}/{event.total}{eta}"
                        bar = progress_html(event.index, event.total, "Step", f"denoising{eta}")
                        skip = gr.skip()
                        yield event.preview, skip, status, skip, skip, skip, skip, bar
                    elif isinstance(event, Finished):
                        yield _finished(event.result, results, ctx)

        def _finished(
            result: ArtResult, results: list[tuple[str, str]], ctx: StudioContext
        ) -> tuple[Any, ...]:
            new = [(str(img.path), f"seed {img.seed}") for img in result.images]
            results = [*new, *results]
            if not result.images:
                stopped = "Stopped before the first image finished."
                skip = gr.skip()
                return skip, results, stopped, skip, results, skip, skip, status_html(stopped)
            last = result.images[-1]
            note = " (stopped early: the finished images are saved)" if result.cancelled else ""
            count = len(result.images)
            done = (
                f"{'Stopped' if result.cancelled else 'Done'}: {count} image{'s' if count != 1 else ''} saved"
            )
            return (
                str(last.path),
                results,
                last.parameters + note,
                str(last.path),
                results,
                last.seed,
                status_line(ctx),
                status_html(done),
            )

        generate_event = generate_btn.click(
            generate,
            inputs=[
                model,
                prompt,
                negative,
                sampler,
                steps,
                cfg,
                width,
                height,
                seed,
                batch,
                init_image,
                strength,
                preview_every,
                full_every,
                upscale_mode,
                session_results,
                *extras.inputs,
                prompt_tools.styles,
                extras.loras,
                extras.clip_model,
                extras.clip_scale,
            ],
            outputs=[preview, gallery, info, result_file, session_results, last_seed, plan_info, progress],
            api_name="art_generate",
            concurrency_id=HEAVY,
            concurrency_limit=HEAVY_ADMISSION,
            **progress_on(progress),  # the preview, parameters and gallery stay uncovered
        )
        inpaint_event = inpaint.button.click(
            inpaint_image,
            inputs=[
                *inpaint.inputs,
                *[model, prompt, negative, sampler, steps, cfg, width, height, seed, batch],
                *[strength, preview_every, full_every, session_results, prompt_tools.styles, extras.loras],
            ],
            outputs=[preview, gallery, info, result_file, session_results, last_seed, plan_info, progress],
            api_name="art_inpaint",
            concurrency_id=HEAVY,
            concurrency_limit=HEAVY_ADMISSION,
            **progress_on(progress),
        )
        inpaint.send_result.click(
            friendly_errors(editor_value), result_file, inpaint.editor, api_name="art_send_to_inpaint"
        )
        stop_btn.click(
            make_stop_handler(ctx), None, None, api_name="art_stop", cancels=[generate_event, inpaint_event]
        )
        random_btn.click(lambda: "-1", None, seed, api_name=False)
        reuse_seed_btn.click(lambda s: str(s), last_seed, seed, api_name=False)

        def load_history(request: gr.Request) -> list[tuple[str, str]]:
            items = []
            for record in visible_history(ctx, request, TASK, HISTORY_SIZE):
                if record.files:
                    items.append(
                        (served(ctx, request, record.files[0]), f"#{record.id} · {record.title[:60]}")
                    )
            return items

        def select_history(evt: gr.SelectData, request: gr.Request) -> tuple[Any, Any]:
            caption = (evt.value or {}).get("caption") or ""
            record_id = int(caption.split("·")[0].strip().lstrip("#")) if caption.startswith("#") else None
            record = ctx.store.get(record_id, viewer(ctx, request)) if record_id is not None else None
            return (record.params if record else None), (record.id if record else None)

        @friendly_errors
        def reuse(record_id: int | None, request: gr.Request) -> tuple[Any, ...]:
            record = ctx.store.get(record_id, viewer(ctx, request)) if record_id is not None else None
            if record is None:
                raise UserError("Select a result in the History gallery first.")
            p = record.params
            return (
                p.get("model_id", default_model),
                p.get("prompt", ""),
                p.get("negative_prompt", ""),
                p.get("sampler", "DDIM"),
                p.get("steps", 25),
                p.get("guidance_scale", 7.0),
                p.get("width", 0),
                p.get("height", 0),
                str(p.get("seed", -1)),
                p.get("strength", 0.6),
            )

        def use_recommended(model_id: str) -> tuple[Any, Any, Any]:
            values = recommended_settings(ctx, model_id or default_model)
            return values["sampler"], values["steps"], values["guidance_scale"]

        model.change(use_recommended, model, [sampler, steps, cfg], api_name=False)
        refresh_btn.click(load_history, None, history, api_name="art_history")
        blocks.load(load_history, None, history, api_name=False)
        history.select(select_history, None, [history_params, selected_record], api_name=False)
        reuse_btn.click(
            reuse,
            selected_record,
            [model, prompt, negative, sampler, steps, cfg, width, height, seed, strength],
            api_name="art_reuse",
        )

    return ArtPage(blocks, result_file, send_to_style, inpaint, extras, send_to_video, model)


def shared_fields(
    model_id: str, prompt_text: str, negative_text: str, sampler_name: str, n_steps: float, cfg_scale: float,
    w: float, h: float, seed_text: str, batch_count: float, denoise: float, every: float, full: float,
    styles: list[str] | None, lora_text: str,
) -> dict[str, Any]:  # fmt: skip
    """The ArtRequest fields text-to-image, img2img and inpaint take from the same controls."""
    return dict(
        prompt=prompt_text,
        negative_prompt=negative_text,
        model_id=model_id or "",
        sampler=sampler_name,
        steps=_whole(n_steps, "Steps"),
        guidance_scale=float(cfg_scale),
        seed=parse_seed(seed_text),
        width=_whole(w, "Width"),
        height=_whole(h, "Height"),
        batch_count=_whole(batch_count, "Batch count"),
        strength=float(denoise),
        preview_every=int(every or 0),
        full_decode_every=int(full or 0),
        styles=tuple(styles or ()),
        loras=lora_specs(lora_text),
    )


def recommended_settings(ctx: StudioContext, model_id: str) -> dict[str, Any]:
    """Sampler, steps and CFG that suit a model (registered entries say; others get SD defaults)."""
    values = {"sampler": "DDIM", "steps": 25, "guidance_scale": 7.0}
    try:
        values.update(ctx.registry.entry(model_id, TASK).recommended)
    except Exception:  # noqa: BLE001 - an unknown id just keeps the SD defaults
        log.debug("no recommended settings for %r", model_id)
    return values


def _whole(value: Any, name: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number (got {str(value)[:40]!r}).") from None
    if number != int(number):
        raise UserError(f"{name} must be a whole number (got {number}).")
    return int(number)


if __name__ == "__main__":
    from pipelines.art import register_art_models
    from studio.settings import Settings

    standalone = StudioContext.create(Settings.from_env())
    register_art_models(standalone.registry, standalone.settings.data_dir)
    build(standalone).blocks.launch()
