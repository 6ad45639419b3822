"""Art page parts that change how images are generated: inpaint/outpaint, hires fix, LoRA, CLIP guidance.

`build_generation_extras()` and `build_inpaint()` create their controls inside the Art page's input
column; the page mounts them and passes their values to the pipeline through the converters below.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image

from pipelines.art import (
    CLIP_ENV,
    HIRES_UPSCALERS,
    MASKED_CONTENT,
    ClipGuidance,
    HiresOptions,
    InpaintOptions,
    LoraSpec,
    load_init_image,
    parse_lora_text,
)
from studio.events import UserError

MASK_LAYER = "mask"


@dataclass
class GenerationExtras:
    """Hires fix (text-to-image) and LoRA controls."""

    hires_enable: gr.Checkbox
    hires_scale: gr.Slider
    hires_upscaler: gr.Dropdown
    hires_steps: gr.Slider
    hires_strength: gr.Slider
    loras: gr.Textbox
    clip_model: gr.Textbox
    clip_scale: gr.Slider

    @property
    def inputs(self) -> list[gr.components.Component]:
        return [
            self.hires_enable,
            self.hires_scale,
            self.hires_upscaler,
            self.hires_steps,
            self.hires_strength,
        ]  # the LoRA box is wired separately, after the style presets (keeps the API order stable)


@dataclass
class InpaintControls:
    editor: gr.ImageEditor  # background = the image, painted layer = the mask
    mask_blur: gr.Slider
    masked_content: gr.Radio
    only_masked: gr.Checkbox
    padding: gr.Slider
    out_left: gr.Slider
    out_top: gr.Slider
    out_right: gr.Slider
    out_bottom: gr.Slider
    button: gr.Button
    send_result: gr.Button  # puts the last result into the editor

    @property
    def inputs(self) -> list[gr.components.Component]:
        return [
            self.editor,
            self.mask_blur,
            self.masked_content,
            self.only_masked,
            self.padding,
            self.out_left,
            self.out_top,
            self.out_right,
            self.out_bottom,
        ]


def build_generation_extras() -> GenerationExtras:
    with gr.Accordion("Hires fix", open=False, elem_id="art-hires"):
        hires_enable = gr.Checkbox(
            False,
            label="Hires fix: draw small, upscale, redraw at the bigger size",
            elem_id="art-hires-enable",
        )
        with gr.Row():
            scale = gr.Slider(1.25, 4, value=2, step=0.25, label="Upscale by", min_width=140)
            upscaler = gr.Dropdown(
                list(HIRES_UPSCALERS),
                value="latent",
                label="Upscaler",
                info="latent: in the model's space; lanczos: on the image",
                min_width=140,
            )
        with gr.Row():
            steps = gr.Slider(0, 150, value=0, step=1, label="Hires steps (0 = same)", min_width=140)
            strength = gr.Slider(0.05, 1, value=0.5, step=0.05, label="Denoising strength", min_width=140)
    with gr.Accordion("LoRA", open=False, elem_id="art-lora"):
        loras = gr.Textbox(
            "",
            label="LoRA files and weights",
            lines=2,
            placeholder="path/to/style.safetensors 0.8\nowner/repo/file.safetensors 0.5",
            info="One per line: a .safetensors path or a hub id, then a weight (0 = off). "
            "<lora:name:0.8> in the prompt works too (name = a file in the data folder's loras/). "
            "Hub (diffusers) models only: the offline pixel model has no LoRA support and ignores them.",
            elem_id="art-loras",
        )
    with gr.Accordion("CLIP guidance and score", open=False, elem_id="art-clip"):
        clip_model = gr.Textbox(
            os.environ.get(CLIP_ENV, ""),
            label="CLIP model (hub id or folder)",
            placeholder="openai/clip-vit-base-patch32",
            info="When set, every image gets a CLIP score in its parameters. "
            "Guidance > 0 steers each DDIM step towards the prompt (text-to-image on latent SD models; "
            "the offline pixel model does not support it).",
            elem_id="art-clip-model",
        )
        clip_scale = gr.Slider(0, 5000, value=0, step=10, label="CLIP guidance scale (0 = score only)")
    return GenerationExtras(hires_enable, scale, upscaler, steps, strength, loras, clip_model, clip_scale)


def clip_options(model: str, scale: float) -> ClipGuidance | None:
    if not (model or "").strip():
        if float(scale or 0) > 0:
            raise UserError(
                "CLIP guidance needs a CLIP model: a hub id such as openai/clip-vit-base-patch32."
            )
        return None
    return ClipGuidance(model.strip(), float(scale or 0))


def build_inpaint() -> InpaintControls:
    with gr.Accordion("Inpaint / outpaint", open=False, elem_id="art-inpaint"):
        gr.Markdown(
            "Upload an image, paint over what to redraw (any brush colour), describe it in the "
            "prompt and press **Inpaint**. For outpaint, set the pixels to add on each side."
        )
        editor = gr.ImageEditor(
            label="Image and mask",
            type="pil",
            image_mode="RGBA",
            sources=["upload", "clipboard"],
            brush=gr.Brush(colors=["#ffffff", "#ff3366"], default_size=12, color_mode="defaults"),
            layers=gr.LayerOptions(allow_additional_layers=False, layers=[MASK_LAYER]),
            transforms=(),
            format="png",
            height=360,
            elem_id="art-inpaint-editor",
        )
        with gr.Row():
            mask_blur = gr.Slider(0, 64, value=4, step=1, label="Mask blur (px)", min_width=140)
            masked_content = gr.Radio(
                list(MASKED_CONTENT), value="original", label="Masked content", min_width=200
            )
        with gr.Row():
            only_masked = gr.Checkbox(False, label="Only masked (redraw a crop at full size)")
            padding = gr.Slider(0, 256, value=32, step=4, label="Only masked padding (px)")
        with gr.Row():
            sides = [
                gr.Slider(0, 512, value=0, step=8, label=f"Outpaint {side} (px)", min_width=110)
                for side in ("left", "top", "right", "bottom")
            ]
        with gr.Row():
            button = gr.Button("Inpaint", variant="primary", elem_id="art-inpaint-btn")
            send_result = gr.Button("Use last result", size="sm")
    return InpaintControls(
        editor, mask_blur, masked_content, only_masked, padding, *sides, button, send_result
    )


def hires_options(
    enable: bool, scale: float, upscaler: str, steps: float, strength: float
) -> HiresOptions | None:
    if not enable:
        return None
    return HiresOptions(float(scale), upscaler or "latent", int(steps or 0), float(strength))


def lora_specs(text: str) -> tuple[LoraSpec, ...]:
    return parse_lora_text(text or "")


def inpaint_request_parts(
    editor: Any,
    mask_blur: float,
    masked_content: str,
    only_masked: bool,
    padding: float,
    left: float,
    top: float,
    right: float,
    bottom: float,
) -> tuple[Image.Image, InpaintOptions]:
    """The editor's value (background + painted layers, or an uploaded file) -> image and options."""
    background, mask = editor_image_and_mask(editor)
    options = InpaintOptions(
        mask=mask,
        mask_blur=int(mask_blur),
        masked_content=masked_content or "original",
        only_masked=bool(only_masked),
        only_masked_padding=int(padding),
        outpaint=(int(left), int(top), int(right), int(bottom)),
    )
    return background, options


def editor_image_and_mask(editor: Any) -> tuple[Image.Image, Image.Image | None]:
    if not editor:
        raise UserError("Inpaint needs an image: upload or paste one into the inpaint editor.")
    if not isinstance(editor, dict):  # an API client may send a plain image
        return load_init_image(editor), None
    background = editor.get("background")
    if background is None:
        raise UserError("Inpaint needs an image: upload or paste one into the inpaint editor.")
    image = background if isinstance(background, Image.Image) else load_init_image(background)
    mask = None
    for layer in editor.get("layers") or []:
        if layer is None:
            continue
        layer = layer if isinstance(layer, Image.Image) else Image.open(layer)
        alpha = layer.convert("RGBA").getchannel("A")
        mask = alpha if mask is None else Image.fromarray(_max(mask, alpha))
    return image.convert("RGB"), mask


def _max(a: Image.Image, b: Image.Image) -> Any:
    import numpy as np

    b = b.resize(a.size) if b.size != a.size else b
    return np.maximum(np.asarray(a), np.asarray(b))


def editor_value(path: str | None) -> Any:
    """A result file -> the editor, ready to paint on."""
    if not path:
        raise UserError("Generate an image first, then send it to inpaint.")
    return {"background": path, "layers": [], "composite": path}
