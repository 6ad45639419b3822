"""The Art model list, and what the selected model knows (shown under the model picker).

A model trained by this project draws only the subjects and styles its data showed it; its
`vocabulary.json` says which. The panel shows them for bundled models and hides itself for hub
models, which take any prompt. A prompt with no known word still draws, with a notice pointing here.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from pipelines.art import TASK, model_vocabulary
from studio.context import StudioContext

TITLE = "What the offline model knows"


def art_model_choices(ctx: StudioContext) -> list[tuple[str, str]]:
    """(label, id) per art model; ids that share weights (art-offline is v1 until v2 ships) are listed once."""
    seen: set[str] = set()
    choices = []
    for entry in ctx.registry.entries(TASK):
        if entry.path not in seen:
            seen.add(entry.path)
            choices.append((entry.display, entry.id))
    return choices


def vocabulary_markdown(ctx: StudioContext, model_id: str | None) -> str:
    """The selected model's subjects, styles and example prompts, or "" when it has no vocabulary."""
    vocabulary = model_vocabulary(ctx.registry, model_id or "")
    return vocabulary.summary() if vocabulary is not None else ""


def render_vocabulary(ctx: StudioContext, model: gr.Dropdown) -> gr.Markdown:
    """A closed accordion that follows the model picker; hidden when the model has no vocabulary."""
    text = vocabulary_markdown(ctx, model.value)
    with gr.Accordion(TITLE, open=False, visible=bool(text), elem_id="art-vocabulary") as panel:
        summary = gr.Markdown(text, elem_id="art-vocabulary-text")

    def follow_model(model_id: str) -> tuple[Any, str]:
        shown = vocabulary_markdown(ctx, model_id)
        return gr.Accordion(visible=bool(shown)), shown

    model.change(follow_model, model, [panel, summary], api_name=False, show_progress="hidden")
    return summary
