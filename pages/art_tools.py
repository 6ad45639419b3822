"""Art tools mounted in the Art tab: style presets and prompt expansion (beside the prompt),
PNG Info with "Send to txt2img / img2img / inpaint", and the X/Y/Z plot.

The Art page calls `render_prompt_tools` under its prompt boxes and `render_tools` below its
results, inside its own Blocks, handing over its controls (`ArtControls`) so the send-to buttons
can fill them and the X/Y/Z plot can start from them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
from PIL import Image

from pages.common import (
    HEAVY,
    HEAVY_ADMISSION,
    follow,
    friendly_errors,
    make_stop_handler,
    progress_on,
    session_key,
    turn_label,
)
from pipelines.art import (
    AXIS_TYPES,
    CLIP_ENV,
    MAX_CELLS,
    TASK,
    ArtPipeline,
    ArtRequest,
    Axis,
    XYZPlot,
    XYZRequest,
    XYZResult,
    apply_styles,
    clip_score,
    load_init_image,
    style_names,
)
from pipelines.metadata import PngInfo, read_png_info
from pipelines.writing import ExpansionRequest, PromptExpander
from studio.context import StudioContext
from studio.events import Finished, Step, UserError
from studio.inputs import parse_seed

log = logging.getLogger(__name__)

AXIS_HINTS = {
    "Nothing": "",
    "Seed": "e.g. 1-4 or 10, 20, 30",
    "Steps": "e.g. 10-30 [3] or 5-25 (+5)",
    "CFG scale": "e.g. 1, 2, 4, 7",
    "Sampler": "e.g. DDIM, Euler a, DPM++ 2M",
    "Prompt S/R": "first value is searched in the prompt, e.g. red, green, blue",
    "Model": "registry ids, labels or hub ids, comma separated",
    "Styles": "style presets, e.g. None, Watercolor, Pixel art",
    "Denoising strength": "img2img only, e.g. 0.3-0.9 [4]",
}


@dataclass
class ArtControls:
    """The Art tab's input components that the tools read and fill."""

    model: gr.Dropdown
    prompt: gr.Textbox
    negative: gr.Textbox
    sampler: gr.Dropdown
    steps: gr.Slider
    cfg: gr.Slider
    width: gr.Slider
    height: gr.Slider
    seed: gr.Textbox
    init_image: gr.Image
    strength: gr.Slider
    styles: gr.Dropdown | None = None  # from render_prompt_tools
    inpaint_image: gr.components.Component | None = None  # the inpaint editor, when the tab has one
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class PromptTools:
    styles: gr.Dropdown
    final_prompt: gr.Textbox
    expand_button: gr.Button


@dataclass
class ArtTools:
    png_image: gr.Image
    png_text: gr.Textbox
    xyz_grid: gr.Image


# -- prompt tools: style presets and expansion ----------------------------------------------------


def styled_preview(prompt: str, negative: str, styles: list[str] | None) -> str:
    """The final prompt and negative after the chosen styles, as the pipeline will apply them."""
    try:
        final, final_negative = apply_styles(prompt or "", negative or "", list(styles or []))
    except UserError as error:
        return str(error)
    text = final or "(empty prompt)"
    return f"{text}\nNegative prompt: {final_negative}" if final_negative else text


def render_prompt_tools(ctx: StudioContext, prompt: gr.Textbox, negative: gr.Textbox) -> PromptTools:
    """Style presets (several at a time, live preview of the final prompt) and one-click expansion."""
    expander = PromptExpander(ctx.registry, ctx.settings.writing_model)
    with gr.Row():
        styles = gr.Dropdown(
            style_names(),
            value=[],
            multiselect=True,
            label="Styles",
            info="Presets applied to the prompt and negative, in the order chosen",
            elem_id="art-styles",
            scale=4,
        )
        with gr.Column(scale=1, min_width=150):
            expand_btn = gr.Button("Expand prompt", size="sm", elem_id="art-expand")
            expand_seed = gr.Number(value=0, precision=0, label="Expansion seed", min_width=120)
    final_prompt = gr.Textbox(
        label="Final prompt (after styles)", lines=2, interactive=False, elem_id="art-final-prompt"
    )
    for trigger in (styles.change, prompt.change, negative.change):
        trigger(
            styled_preview,
            [prompt, negative, styles],
            final_prompt,
            api_name=False,
            show_progress="hidden",
            queue=False,  # cheap string work: no queue, no progress bar
            trigger_mode="always_last",  # typing fast sends only the newest text
        )

    @friendly_errors
    def expand(
        text: str, seed: float, request: gr.Request, progress: gr.Progress = gr.Progress()
    ) -> Iterator[str]:
        expansion = ExpansionRequest(text, seed=parse_seed(seed if seed is not None else 0))
        with ctx.jobs.job(session_key(request), on_wait=turn_label(progress)) as cancel:
            for event in follow(expander.generate(expansion, cancel), progress, ctx, request):
                if isinstance(event, Step) and event.preview:
                    yield event.preview
                elif isinstance(event, Finished):
                    yield event.result.prompt

    expand_btn.click(
        expand,
        [prompt, expand_seed],
        prompt,
        api_name="art_expand_prompt",
        concurrency_id=HEAVY,
        concurrency_limit=HEAVY_ADMISSION,
        **progress_on(final_prompt),  # the prompt box streams the expansion, uncovered
    )
    return PromptTools(styles, final_prompt, expand_btn)


# -- PNG Info ------------------------------------------------------------------------------------


def _path_of(upload: Any) -> str | None:
    if upload is None:
        return None
    return str(getattr(upload, "path", None) or upload)


def read_upload(upload: Any) -> PngInfo:
    path = _path_of(upload)
    if not path:
        raise UserError("Drop a PNG (or JPEG/WebP) made by an image generator first.")
    return read_png_info(path)


def send_values(ctx: StudioContext, info: PngInfo, controls: ArtControls) -> list[Any]:
    """PngInfo -> updates for [model, prompt, negative, sampler, steps, cfg, width, height, seed]."""
    if not info.found:
        raise UserError("This image holds no generation parameters to send.")
    sampler = info.art_sampler
    if info.sampler and sampler is None:
        gr.Warning(f"The sampler {info.sampler!r} is not available here; the current sampler was kept.")
    model = _model_for(ctx, info.model)
    width, height = _generation_size(info)
    return [
        model if model else gr.skip(),
        info.prompt,
        info.negative_prompt,
        sampler if sampler else gr.skip(),
        info.steps if info.steps else gr.skip(),
        info.cfg_scale if info.cfg_scale is not None else gr.skip(),
        width if width else gr.skip(),
        height if height else gr.skip(),
        str(info.seed) if info.seed is not None else gr.skip(),
    ]


def _model_for(ctx: StudioContext, name: str) -> str | None:
    """The registry entry a file's model names (by id or label), else None (the model is kept)."""
    for entry in ctx.registry.entries(TASK):
        if name and name in (entry.id, entry.display):
            return entry.id
    return None


def _generation_size(info: PngInfo) -> tuple[int | None, int | None]:
    """The size to ask for. Our files record the size of the image saved: a pixel-space model's
    upscaled size ('Upscale: 8x ...') or the hires-fixed size ('Hires upscale: 2'), where A1111
    records the first-pass size; both are turned back into the size to generate at."""
    width, height = info.width, info.height
    factor = str(info.settings.get("Upscale", "")).split("x")[0].strip()
    if width and height and factor.isdigit() and int(factor) > 1:
        width, height = width // int(factor), height // int(factor)
    hires = _number(info.settings.get("Hires upscale"))
    if width and height and hires and hires > 1 and info.generator == "Creative Studio":
        width, height = (int(round(side / hires / 8)) * 8 for side in (width, height))
    if width and height and (width % 8 or height % 8 or max(width, height) > 2048):
        return None, None  # not a size the controls accept; keep the current one
    return width, height


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def render_pnginfo(ctx: StudioContext, controls: ArtControls) -> tuple[gr.Image, gr.Textbox]:
    with gr.Row(equal_height=False):
        with gr.Column(scale=4, min_width=280):
            png = gr.File(
                label="Drop an image (PNG, JPEG, WebP)",
                file_types=["image"],
                type="filepath",
                elem_id="pnginfo-file",
            )
            shown = gr.Image(
                label="Image", type="filepath", interactive=False, height=260, elem_id="pnginfo-image"
            )
        with gr.Column(scale=6, min_width=320):
            generator = gr.Markdown("", elem_id="pnginfo-generator")
            text = gr.Textbox(label="Parameters", lines=6, interactive=False, elem_id="pnginfo-text")
            with gr.Row():
                to_txt = gr.Button("Send to txt2img", size="sm", elem_id="pnginfo-to-txt2img")
                to_img = gr.Button("Send to img2img", size="sm", elem_id="pnginfo-to-img2img")
                to_inpaint = gr.Button(
                    "Send to inpaint",
                    size="sm",
                    elem_id="pnginfo-to-inpaint",
                    visible=controls.inpaint_image is not None,
                )
            with gr.Accordion("Raw metadata", open=False):
                raw = gr.JSON(label="Text chunks as stored")

    @friendly_errors
    def read(upload: Any) -> tuple[Any, ...]:
        if upload is None:
            return None, "", "", None
        info = read_upload(upload)
        if not info.found:
            gr.Info("No generation parameters found in this image.")
            head = f"**No generation parameters found** · image {info.image_size[0]}×{info.image_size[1]}"
        else:
            head = f"**Made with:** {info.generator} · image {info.image_size[0]}×{info.image_size[1]}"
        return _path_of(upload), head, info.to_text(), info.raw or None

    png.change(read, png, [shown, generator, text, raw], api_name="art_pnginfo")
    fields = [
        controls.model,
        controls.prompt,
        controls.negative,
        controls.sampler,
        controls.steps,
        controls.cfg,
        controls.width,
        controls.height,
        controls.seed,
    ]

    @friendly_errors
    def to_txt2img(upload: Any) -> list[Any]:
        return send_values(ctx, read_upload(upload), controls)

    @friendly_errors
    def to_img2img(upload: Any) -> list[Any]:
        values = send_values(ctx, read_upload(upload), controls)
        load_init_image(_path_of(upload))  # a readable image, or a clear error
        return [*values, _path_of(upload)]

    @friendly_errors
    def to_inpaint_editor(upload: Any) -> list[Any]:
        *values, path = to_img2img(upload)
        # an ImageEditor value: the picture as background, no mask painted yet
        return [*values, {"background": path, "layers": [], "composite": path}]

    to_txt.click(to_txt2img, png, fields, api_name="art_pnginfo_to_txt2img")
    to_img.click(to_img2img, png, [*fields, controls.init_image], api_name="art_pnginfo_to_img2img")
    if controls.inpaint_image is not None:
        to_inpaint.click(
            to_inpaint_editor, png, [*fields, controls.inpaint_image], api_name="art_pnginfo_to_inpaint"
        )
    return shown, text


# -- X/Y/Z plot ----------------------------------------------------------------------------------


def render_xyz(ctx: StudioContext, controls: ArtControls) -> gr.Image:
    plot = XYZPlot(ArtPipeline(ctx.registry, ctx.store, ctx.settings.art_model))
    axes = []
    gr.Markdown(
        f"Vary up to three settings of the Art controls above; at most {MAX_CELLS} images. "
        "Values: `1, 2, 3`, ranges `1-5`, `1-10 (+2)`, `10-20 [3]`; quote values with commas."
    )
    for name, kind, values in (("X", "CFG scale", "1, 4, 7"), ("Y", "Nothing", ""), ("Z", "Nothing", "")):
        with gr.Row():
            axis_type = gr.Dropdown(
                list(AXIS_TYPES),
                value=kind,
                label=f"{name} type",
                scale=1,
                min_width=140,
                elem_id=f"xyz-{name.lower()}-type",
            )
            axis_values = gr.Textbox(
                value=values,
                label=f"{name} values",
                placeholder=AXIS_HINTS[kind] or "choose a type",
                scale=3,
                elem_id=f"xyz-{name.lower()}-values",
            )
        axis_type.change(
            lambda k: gr.update(placeholder=AXIS_HINTS.get(k, "")), axis_type, axis_values, api_name=False
        )
        axes += [axis_type, axis_values]
    clip_box = gr.Textbox(
        os.environ.get(CLIP_ENV, ""),
        label="CLIP score per cell (CLIP model: hub id or folder; empty = off)",
        placeholder="openai/clip-vit-base-patch32",
        elem_id="xyz-clip-model",
    )
    with gr.Row():
        run_btn = gr.Button("Run X/Y/Z plot", variant="primary", scale=3, elem_id="xyz-run")
        stop_btn = gr.Button("Stop", variant="stop", scale=1)
    status = gr.Markdown("", elem_id="xyz-status")
    grid = gr.Image(label="Grid", type="pil", format="png", interactive=False, elem_id="xyz-grid", height=520)
    with gr.Row():
        grid_file = gr.File(label="Grid PNG and cell parameters (JSON)", file_count="multiple")
    cells = gr.JSON(label="Cells")

    @friendly_errors
    def run_plot(
        model_id: str,
        prompt_text: str,
        negative_text: str,
        sampler_name: str,
        n_steps: float,
        cfg_scale: float,
        w: float,
        h: float,
        seed_text: str,
        init_path: str | None,
        denoise: float,
        styles: list[str] | None,
        x_type: str,
        x_values: str,
        y_type: str,
        y_values: str,
        z_type: str,
        z_values: str,
        clip_model: str | None,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),
    ) -> Iterator[tuple[Any, ...]]:
        base = ArtRequest(
            prompt=prompt_text,
            negative_prompt=negative_text,
            model_id=model_id or "",
            sampler=sampler_name,
            steps=int(n_steps),
            guidance_scale=float(cfg_scale),
            seed=parse_seed(seed_text),
            width=int(w or 0),
            height=int(h or 0),
            init_image=load_init_image(init_path) if init_path else None,
            strength=float(denoise),
            styles=tuple(styles or ()),
        )
        xyz = XYZRequest(
            base,
            Axis(x_type, x_values or ""),
            Axis(y_type, y_values or ""),
            Axis(z_type, z_values or ""),
            scorer=clip_scorer((clip_model or "").strip()),
        )
        with ctx.jobs.job(session_key(request), on_wait=turn_label(progress)) as cancel:
            for event in follow(plot.generate(xyz, cancel), progress, ctx, request):
                if isinstance(event, Step):
                    cell = f"cell {event.info.get('cell')}/{event.info.get('cells')} · {event.info.get('label', '')}"
                    text = f"Rendering {cell} · step {event.index}/{event.total}"
                    yield (
                        (event.preview if event.preview is not None else gr.skip()),
                        text,
                        gr.skip(),
                        gr.skip(),
                    )
                elif isinstance(event, Finished):
                    yield _xyz_outputs(event.result)

    run_event = run_btn.click(
        run_plot,
        [
            controls.model,
            controls.prompt,
            controls.negative,
            controls.sampler,
            controls.steps,
            controls.cfg,
            controls.width,
            controls.height,
            controls.seed,
            controls.init_image,
            controls.strength,
            controls.styles if controls.styles is not None else gr.State([]),
            *axes,
            clip_box,
        ],
        [grid, status, grid_file, cells],
        api_name="art_xyz",
        concurrency_id=HEAVY,
        concurrency_limit=HEAVY_ADMISSION,
        **progress_on(status),  # the grid's cells stay visible as they render
    )
    stop_btn.click(make_stop_handler(ctx), None, None, api_name="art_xyz_stop", cancels=[run_event])
    return grid


def clip_scorer(clip_model: str) -> Callable[[list[Image.Image], str], list[float]] | None:
    """A CLIP scorer for the X/Y/Z cells, loaded now so a wrong model id fails before any cell runs."""
    if not clip_model:
        return None
    try:
        clip_score([Image.new("RGB", (32, 32))], "a test", clip_model)
    except UserError:
        raise
    except (OSError, ValueError, RuntimeError) as error:
        raise UserError(
            f"The CLIP model {clip_model!r} could not be loaded ({type(error).__name__}); "
            "give a hub id such as openai/clip-vit-base-patch32 (needs network) or a local folder."
        ) from None
    return lambda images, prompt: clip_score(images, prompt, clip_model)


def _xyz_outputs(result: XYZResult) -> tuple[Any, ...]:
    nx, ny, nz = result.shape
    done = len(result.cells)
    note = f" · stopped: {done} of {nx * ny * nz} cells kept" if result.cancelled else ""
    status = f"**X/Y/Z plot:** {nx} × {ny} × {nz} grid, {done} images{note}"
    if result.path is not None:
        status += f" · saved to History as #{result.record_id}"
    files = [str(p) for p in (result.path, result.json_path) if p is not None]
    table = [
        {"x": c.x, "y": c.y, "z": c.z, "label": c.label, "seed": c.seed, "parameters": c.parameters}
        for c in result.cells
    ]
    return result.grid, status, files or None, table


# -- mounting ------------------------------------------------------------------------------------


def render_tools(ctx: StudioContext, controls: ArtControls) -> ArtTools:
    """The PNG Info and X/Y/Z plot sub-tabs, inside the caller's Blocks."""
    with gr.Tabs(elem_id="art-tools", overflow_behavior="wrap"):
        with gr.Tab("PNG Info", elem_id="art-pnginfo-tab"):
            png_image, png_text = render_pnginfo(ctx, controls)
        with gr.Tab("X/Y/Z plot", elem_id="art-xyz-tab"):
            grid = render_xyz(ctx, controls)
    return ArtTools(png_image, png_text, grid)
