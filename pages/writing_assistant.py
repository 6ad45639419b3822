"""Writing Assistant tab: streamed story, poem, continuation, outline → article, rewrite and titles.

Text streams into the output box token by token, with tokens/s shown live; Stop ends generation
within one token. Every finished (or stopped) text is saved as Markdown in the output store, so it
shows in the History below; "Export Markdown" hands over that file, or saves your edited version.
"""

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
    make_stop_handler,
    progress_on,
    session_key,
    status_line,
)
from pages.serving import owner_of, served, viewer, visible_history
from pipelines.writing import (
    GENRES,
    LENGTHS,
    MAX_NEW_TOKENS,
    MAX_SECTIONS,
    MAX_TITLES,
    MODES,
    POEM_FORMS,
    TASK,
    TONES,
    SamplingParams,
    WritingPipeline,
    WritingRequest,
    WritingResult,
    read_markdown_body,
    save_markdown,
    writing_backend_status,
)
from studio.context import StudioContext
from studio.events import Finished, Notice, Started, Step, UserError
from studio.inputs import parse_seed

# the UI's modes; "outline" is the article's first step, with its own button
UI_MODES = ["story", "poem", "continue", "article", "rewrite", "titles"]
HISTORY_SIZE = 50
EXAMPLES = [
    ["story", "a lighthouse keeper finds a message in a bottle", "", "", ""],
    ["poem", "", "autumn rain on a tin roof", "", ""],
    ["continue", "", "", "The door creaked open and", ""],
]


@dataclass
class WritingPage:
    blocks: gr.Blocks
    output: gr.Textbox  # the latest text, for cross-tab wiring
    history: gr.Dataframe


def model_choices(ctx: StudioContext) -> list[tuple[str, str]]:
    return [(entry.display, entry.id) for entry in ctx.registry.entries(TASK)]


def stats_line(event: Step | Started | None = None, result: WritingResult | None = None) -> str:
    """The live line under the output: tokens, tokens/s, time to first token, stage."""
    if result is not None:
        saved = f" · saved as #{result.record_id}" if result.record_id else ""
        state = "Stopped" if result.cancelled else "Done"
        ttft = f" · first token {result.ttft_s:.2f} s" if result.ttft_s is not None else ""
        backend = f" · {result.backend}" if result.backend else ""
        # the story's ending, said where the reader looks (trimmed to its last full sentence, or ran on)
        ending = f"\n\n*{result.ending_notice}*" if result.ending_notice else ""
        return (
            f"**{state}:** {result.tokens} tokens in {result.seconds:.1f} s · "
            f"**{result.tokens_per_s:.1f} tokens/s**{ttft}{backend} · seed {result.seed}{saved}{ending}"
        )
    if isinstance(event, Step):
        info = event.info
        ttft = f" · first token {info['ttft_s']:.2f} s" if info.get("ttft_s") is not None else ""
        stage = f" · {info['stage']}" if info.get("stage") else ""
        backend = f" · {info['backend']}" if info.get("backend") else ""
        return (
            f"**{info.get('tokens', event.index)} tokens · {info.get('tokens_per_s', 0):.1f} tokens/s**"
            f"{ttft}{backend}{stage}"
        )
    if isinstance(event, Started):
        return f"Starting: {event.label}…"
    return ""


def build(ctx: StudioContext) -> WritingPage:
    pipeline = WritingPipeline(ctx.registry, ctx.store)
    default_model = ctx.settings.writing_model or ctx.registry.default_id(TASK)

    with gr.Blocks() as blocks:
        with gr.Row(equal_height=False):
            # -- inputs --------------------------------------------------------------------------
            with gr.Column(scale=5, min_width=320):
                model = gr.Dropdown(
                    model_choices(ctx),
                    value=default_model,
                    label="Model",
                    info="Pick one, or type any Hugging Face causal-LM id, local folder or .gguf file",
                    allow_custom_value=True,
                    elem_id="writing-model",
                )
                gr.Markdown(writing_backend_status(), elem_id="writing-backend")
                mode = gr.Radio(
                    [(MODES[key], key) for key in UI_MODES],
                    value="story",
                    label="Mode",
                    elem_id="writing-mode",
                )
                with gr.Group(visible=True) as story_box:
                    premise = gr.Textbox(
                        label="Premise",
                        lines=3,
                        placeholder="a lighthouse keeper finds a message in a bottle",
                        elem_id="writing-premise",
                    )
                    with gr.Row():
                        genre = gr.Dropdown(GENRES, value="any", label="Genre", allow_custom_value=True)
                        length = gr.Radio(list(LENGTHS), value="short", label="Length")
                with gr.Group(visible=False) as poem_box:
                    theme = gr.Textbox(label="Theme", lines=2, placeholder="autumn rain on a tin roof")
                    form = gr.Dropdown(list(POEM_FORMS), value="free verse", label="Form")
                with gr.Group(visible=False) as continue_box:
                    source = gr.Textbox(label="Your text", lines=8, placeholder="The door creaked open and")
                with gr.Group(visible=False) as rewrite_box:
                    rewrite_text = gr.Textbox(label="Text to rewrite", lines=6)
                    tone = gr.Dropdown(TONES, value="formal", label="Tone or style", allow_custom_value=True)
                with gr.Group(visible=False) as titles_box:
                    titles_topic = gr.Textbox(label="What are the titles for?", lines=2)
                    count = gr.Slider(1, MAX_TITLES, value=8, step=1, label="How many titles")
                with gr.Group(visible=False) as article_box:
                    topic = gr.Textbox(label="Article topic", lines=2, placeholder="urban gardening")
                    sections = gr.Slider(1, MAX_SECTIONS, value=5, step=1, label="Sections in the outline")
                    outline_btn = gr.Button("1. Generate outline", variant="secondary")
                    outline = gr.Textbox(
                        label="Outline (edit freely: one section per line)",
                        lines=7,
                        interactive=True,
                        elem_id="writing-outline",
                    )
                    polish = gr.Checkbox(value=True, label="Polish pass (introduction + clean-up)")
                    article_btn = gr.Button("2. Write article from outline", variant="primary")
                with gr.Row():
                    write_btn = gr.Button("Write", variant="primary", scale=3, elem_id="writing-write")
                    stop_btn = gr.Button("Stop", variant="stop", scale=1, elem_id="writing-stop")
                with gr.Accordion("Sampling", open=False, elem_id="writing-sampling"):
                    with gr.Row():
                        temperature = gr.Slider(0, 2, value=0.8, step=0.05, label="Temperature (0 = greedy)")
                        top_p = gr.Slider(0.05, 1, value=0.95, step=0.01, label="Top-p")
                    with gr.Row():
                        max_tokens = gr.Number(
                            value=400,
                            precision=0,
                            label=f"Max new tokens (1–{MAX_NEW_TOKENS}; per section for articles)",
                            elem_id="writing-max-tokens",
                        )
                        penalty = gr.Slider(1.0, 2.0, value=1.1, step=0.05, label="Repetition penalty")
                        seed = gr.Textbox(value="-1", label="Seed (-1 = random)")
            # -- outputs -------------------------------------------------------------------------
            with gr.Column(scale=6, min_width=320):
                stats = gr.Markdown("Ready.", elem_id="writing-stats")
                output = gr.Textbox(
                    label="Output (editable)",
                    lines=18,
                    max_lines=40,
                    interactive=True,
                    elem_id="writing-output",
                )
                with gr.Row():
                    export_btn = gr.Button("Export Markdown", size="sm")
                    export_file = gr.File(
                        label="Markdown file", interactive=False, visible=False, elem_id="writing-export"
                    )
        with gr.Accordion("History", open=False, elem_id="writing-history-box") as history_box:
            refresh_btn = gr.Button("Refresh history", size="sm")
            history = gr.Dataframe(
                headers=["id", "when", "title"],
                datatype=["number", "str", "str"],
                interactive=False,
                label="Saved texts (click a row to open it)",
                elem_id="writing-history",
            )
            with gr.Row():
                history_text = gr.Markdown(label="Selected text", elem_id="writing-history-text")
                history_file = gr.File(label="Selected file", interactive=False, visible=False)
        gr.Markdown(status_line(ctx), elem_classes=["studio-status-line"])

        last = gr.State(None)  # {"text", "path", "record_id", "title"} of the last result

        # -- handlers ----------------------------------------------------------------------------
        def sampling(temp: float, p: float, tokens: Any, rep: float, seed_text: str) -> SamplingParams:
            # raw numbers: the pipeline's validation turns bad ones into clear messages
            return SamplingParams(temp, p, _max_tokens(tokens), rep, parse_seed(seed_text))

        def run(request: WritingRequest, http: gr.Request) -> Iterator[tuple[Any, ...]]:
            """Stream one request; yields (text, stats, last-result state) updates."""
            with ctx.jobs.job(session_key(http)) as cancel:
                for event in follow(pipeline.generate(request, cancel), None, ctx, http):
                    if isinstance(event, Notice):
                        yield gr.skip(), f"*{event.message}*", gr.skip()  # e.g. the one-time GGUF conversion
                    elif isinstance(event, Started):
                        yield gr.skip(), stats_line(event), gr.skip()
                    elif isinstance(event, Step) and not cancel.cancelled:
                        # once Stop is pressed its message owns the stats line; the text is saved either way
                        yield event.preview, stats_line(event), gr.skip()
                    elif isinstance(event, Finished):
                        result: WritingResult = event.result
                        state = {
                            "text": result.text,
                            "path": str(result.path) if result.path else None,
                            "record_id": result.record_id,
                            "title": result.title,
                        }
                        yield result.text, stats_line(result=result), state

        @friendly_errors
        def write(
            model_id: str,
            mode_key: str,
            premise_text: str,
            genre_name: str,
            length_name: str,
            theme_text: str,
            form_name: str,
            source_text: str,
            rewrite_source: str,
            tone_name: str,
            titles_text: str,
            n_titles: float,
            temp: float,
            p: float,
            tokens: Any,
            rep: float,
            seed_text: str,
            request: gr.Request,
        ) -> Iterator[tuple[Any, ...]]:
            texts = {
                "story": premise_text,
                "poem": theme_text,
                "continue": source_text,
                "rewrite": rewrite_source,
                "titles": titles_text,
            }
            if mode_key not in texts:
                raise UserError("For articles, use 'Generate outline' and then 'Write article from outline'.")
            writing_request = WritingRequest(
                mode=mode_key,
                text=texts[mode_key] or "",
                model_id=model_id or "",
                genre=genre_name or "any",
                length=length_name or "short",
                form=form_name or "free verse",
                tone=tone_name or "formal",
                count=int(n_titles or 8),
                sampling=sampling(temp, p, tokens, rep, seed_text),
            )
            yield from run(writing_request, request)

        @friendly_errors
        def make_outline(
            model_id: str,
            topic_text: str,
            n_sections: float,
            temp: float,
            p: float,
            tokens: Any,
            rep: float,
            seed_text: str,
            request: gr.Request,
        ) -> Iterator[tuple[Any, ...]]:
            writing_request = WritingRequest(
                mode="outline",
                text=topic_text or "",
                model_id=model_id or "",
                sections=int(n_sections or 5),
                sampling=sampling(temp, p, min(_max_tokens(tokens), 200), rep, seed_text),
            )
            for text, line, _state in run(writing_request, request):
                yield text, line

        @friendly_errors
        def write_article(
            model_id: str,
            topic_text: str,
            outline_text: str,
            do_polish: bool,
            temp: float,
            p: float,
            tokens: Any,
            rep: float,
            seed_text: str,
            request: gr.Request,
        ) -> Iterator[tuple[Any, ...]]:
            writing_request = WritingRequest(
                mode="article",
                text=topic_text or "",
                model_id=model_id or "",
                outline=outline_text or "",
                polish=bool(do_polish),
                sampling=sampling(temp, p, tokens, rep, seed_text),
            )
            yield from run(writing_request, request)

        sampling_inputs = [temperature, top_p, max_tokens, penalty, seed]
        # the stats line is the job's progress (tokens, tokens/s); nothing covers the streaming text
        common = {
            "concurrency_id": HEAVY,
            "concurrency_limit": HEAVY_ADMISSION,
            **progress_on(stats, "hidden"),
        }
        write_event = write_btn.click(
            write,
            inputs=[
                model,
                mode,
                premise,
                genre,
                length,
                theme,
                form,
                source,
                rewrite_text,
                tone,
                titles_topic,
                count,
                *sampling_inputs,
            ],
            outputs=[output, stats, last],
            api_name="writing_generate",
            **common,
        )
        outline_event = outline_btn.click(
            make_outline,
            inputs=[model, topic, sections, *sampling_inputs],
            outputs=[outline, stats],
            api_name="writing_outline",
            **common,
        )
        article_event = article_btn.click(
            write_article,
            inputs=[model, topic, outline, polish, *sampling_inputs],
            outputs=[output, stats, last],
            api_name="writing_article",
            **common,
        )
        stop_handler = make_stop_handler(ctx)

        def stop(request: gr.Request) -> Any:
            """Cancel the job's token (generation ends within one token) and say what happened."""
            running = ctx.jobs.running(session_key(request))
            stop_handler(request)
            if not running:
                return gr.skip()  # Stop with nothing running, or twice: harmless, nothing to say
            return "**Stopped.** The text so far is kept and saved: see History."

        stop_btn.click(
            stop,
            None,
            stats,
            api_name="writing_stop",
            cancels=[write_event, outline_event, article_event],
        )

        def switch_mode(mode_key: str) -> tuple[Any, ...]:
            boxes = ["story", "poem", "continue", "rewrite", "titles", "article"]
            return (
                *(gr.update(visible=mode_key == box) for box in boxes),
                gr.update(visible=mode_key != "article"),
            )

        mode.change(
            switch_mode,
            mode,
            [story_box, poem_box, continue_box, rewrite_box, titles_box, article_box, write_btn],
            api_name=False,
            queue=False,
        )

        @friendly_errors
        def export(text: str, state: dict[str, Any] | None, request: gr.Request) -> str:
            """The saved file of the last result, or a new saved record when the text was edited."""
            if not (text or "").strip():
                raise UserError("There is no text to export yet. Write something first.")
            if state and state.get("path") and text == state.get("text"):
                return served(ctx, request, state["path"])
            # edited after generation, or the result of a stopped run (whose own save the page never saw)
            title = (state or {}).get("title") or f"Exported: {text.strip().splitlines()[0][:60]}"
            params = {"exported_from_editor": True, "from_record": (state or {}).get("record_id")}
            record = save_markdown(ctx.store, title, text, params)
            ctx.store.claim([record.id], owner_of(request))
            gr.Info(f"Saved as #{record.id}.")
            return served(ctx, request, record.files[0])

        export_btn.click(export, [output, last], export_file, api_name="writing_export").success(
            lambda: gr.File(visible=True), None, export_file, api_name=False, queue=False
        )

        def load_history(request: gr.Request) -> list[list[Any]]:
            return [
                [r.id, r.when, r.title] for r in visible_history(ctx, request, TASK, HISTORY_SIZE) if r.files
            ]

        def open_record(table: Any, evt: gr.SelectData, request: gr.Request) -> tuple[Any, Any]:
            row = evt.row_value if getattr(evt, "row_value", None) else None
            record = ctx.store.get(int(row[0]), viewer(ctx, request)) if row else None
            if record is None or not record.files:
                return "Select a saved text.", gr.File(visible=False)
            link = served(ctx, request, record.files[0])
            return read_markdown_body(record.files[0]), gr.File(link, visible=True)

        refresh_btn.click(load_history, None, history, api_name="writing_history")
        blocks.load(load_history, None, history, api_name=False)
        history_box.expand(load_history, None, history, api_name=False)
        history.select(open_record, history, [history_text, history_file], api_name=False)
        # the history refreshes itself whenever a text is saved
        for event in (write_event, article_event):
            event.then(load_history, None, history, api_name=False)

    return WritingPage(blocks, output, history)


def _max_tokens(value: Any) -> int:
    """The raw number: the pipeline clamps it to the model's range with a notice."""
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"Max new tokens must be a whole number (got {str(value)[:40]!r}).") from None


if __name__ == "__main__":
    from pipelines.writing import register_writing_models
    from studio.settings import Settings

    standalone = StudioContext.create(Settings.from_env())
    register_writing_models(standalone.registry, standalone.settings.data_dir)
    build(standalone).blocks.launch()
