"""Music tab: compose with the bundled composer, continue a melody, analyse audio, text-to-music."""

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
    progress_html,
    progress_on,
    progress_panel,
    session_key,
    status_html,
    status_line,
    turn_label,
)
from pages.serving import discard_uploads, served, served_all
from pipelines.music import (
    GM_CHOICES,
    KEYS,
    MAX_BARS,
    STYLE_DEFAULTS,
    STYLES,
    TEXT_TASK,
    VOICE_NAMES,
    AnalyseRequest,
    AnalysisResult,
    ComposeRequest,
    ContinueRequest,
    MusicPipeline,
    MusicResult,
    TextToMusicRequest,
)
from studio.context import StudioContext
from studio.events import Finished, Step
from studio.inputs import parse_seed

GM_NAMES = list(GM_CHOICES)
GM_BY_NUMBER = {number: name for name, number in GM_CHOICES.items()}
MUSIC_READY = "Ready: the bars are counted here as they are composed."
STYLE_LABELS = {
    "chorale": "Bach chorale (4 voices)",
    "folk": "Folk song (Essen)",
    "irish": "Irish tune (O'Neill)",
}
MIDI_TYPES = [".mid", ".midi"]


@dataclass
class MusicPage:
    blocks: gr.Blocks
    player: gr.Audio  # the latest composed audio (file path)
    midi_file: gr.State  # path of the latest MIDI, for cross-tab wiring
    send_to_video: gr.Button | None = None  # the app wires it: `wav_file` -> the Video soundtrack
    wav_file: gr.State | None = None  # path of the latest composed/continued WAV


def _instrument_names(style: str) -> list[str]:
    return [GM_BY_NUMBER[p] for p in STYLE_DEFAULTS[style]["instruments"]]


def _programs(names: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(GM_CHOICES.get(name, 0) for name in names if name)


def _downloads(ctx: StudioContext, request: gr.Request, result: MusicResult) -> list[str]:
    files = [result.files.midi, result.files.wav, result.files.compressed]
    return served_all(ctx, request, files)


def bar_progress(event: Step, doing: str) -> str:
    """The music progress label, e.g. "Bar 3/8 · composing": the pipeline's bar count, bounded."""
    info = event.info or {}
    if "bars" in info and info.get("bars_total"):
        total = int(info["bars_total"])
        detail = "audio rendered" if info.get("stage") == "rendered" else doing
        return progress_html(info["bars"], total, "Bar", detail)  # progress_html bounds it by the total
    return progress_html(event.index, event.total, "Step", doing)


def build(ctx: StudioContext) -> MusicPage:
    pipeline = MusicPipeline(ctx.registry, ctx.store)
    text_models = [(e.display, e.id) for e in ctx.registry.entries(TEXT_TASK)]

    with gr.Blocks() as blocks:
        last_wav = gr.State(None)  # the latest result's WAV and MIDI, for "Analyse the last result"
        last_midi = gr.State(None)
        with gr.Tabs(overflow_behavior="wrap", elem_id="music-tabs"):  # every sub-tab on a phone
            # -- Compose -------------------------------------------------------------------------
            with gr.Tab("Compose", id="music-compose"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=5, min_width=320):
                        style = gr.Radio(
                            [(STYLE_LABELS[s], s) for s in STYLES],
                            value="chorale",
                            label="Style",
                            elem_id="music-style",
                        )
                        with gr.Row():
                            key = gr.Dropdown(list(KEYS), value="C major", label="Key", min_width=140)
                            tempo = gr.Slider(30, 240, value=80, step=1, label="Tempo (BPM)", min_width=140)
                        with gr.Row():
                            bars = gr.Number(
                                value=8,
                                precision=0,
                                label=f"Length (bars, 1–{MAX_BARS})",
                                min_width=140,
                                elem_id="music-bars",
                            )
                            temperature = gr.Slider(
                                0.1, 1.5, value=0.9, step=0.05, label="Temperature", min_width=140
                            )
                        with gr.Row():
                            seed = gr.Textbox(value="-1", label="Seed (-1 = random)", min_width=140)
                            audio_format = gr.Radio(
                                ["MP3", "OGG"], value="MP3", label="Compressed copy", min_width=140
                            )
                        with gr.Accordion("Instruments (General MIDI, per part)", open=False):
                            instruments = [
                                gr.Dropdown(GM_NAMES, value=name, label=VOICE_NAMES[i], min_width=140)
                                for i, name in enumerate(_instrument_names("chorale"))
                            ]
                        with gr.Row():
                            compose_btn = gr.Button(
                                "Compose", variant="primary", scale=3, elem_id="music-compose-btn"
                            )
                            stop_btn = gr.Button("Stop", variant="stop", scale=1, elem_id="music-stop")
                    with gr.Column(scale=6, min_width=320):
                        progress = progress_panel("music-progress", MUSIC_READY)
                        player = gr.Audio(
                            label="Listen", type="filepath", interactive=False, elem_id="music-player"
                        )
                        roll = gr.Image(
                            label="Pianoroll",
                            type="filepath",
                            interactive=False,
                            elem_id="music-pianoroll",
                        )
                        info = gr.Markdown("", elem_id="music-info")
                        send_to_video = gr.Button(
                            "Send to Video (soundtrack)", size="sm", elem_id="music-to-video"
                        )
                        files = gr.File(
                            label="Downloads (MIDI, WAV, MP3/OGG)",
                            file_count="multiple",
                            elem_id="music-files",
                        )

            # -- Continue ------------------------------------------------------------------------
            with gr.Tab("Continue", id="music-continue"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=5, min_width=320):
                        gr.Markdown(
                            "Upload an opening as **MIDI**, or **record/upload a melody** (one voice): "
                            "pyin hears the notes and the composer carries on. The opening is kept as given."
                        )
                        cont_midi = gr.File(label="Opening (MIDI)", file_types=MIDI_TYPES, type="filepath")
                        cont_audio = gr.Audio(
                            label="…or a melody clip (≤ 30 s used)",
                            type="filepath",
                            sources=["upload", "microphone"],
                        )
                        cont_style = gr.Radio(
                            [(STYLE_LABELS[s], s) for s in STYLES], value="folk", label="Style"
                        )
                        with gr.Row():
                            cont_bars = gr.Number(value=8, precision=0, label="New bars", min_width=120)
                            cont_key = gr.Dropdown(["auto", *KEYS], value="auto", label="Key", min_width=120)
                            cont_tempo = gr.Number(value=0, label="Tempo (0 = from the file)", min_width=120)
                        with gr.Row():
                            cont_temperature = gr.Slider(0.1, 1.5, value=0.9, step=0.05, label="Temperature")
                            cont_seed = gr.Textbox(value="-1", label="Seed (-1 = random)")
                        with gr.Row():
                            continue_btn = gr.Button("Continue", variant="primary", scale=3)
                            cont_stop = gr.Button("Stop", variant="stop", scale=1)
                    with gr.Column(scale=6, min_width=320):
                        cont_progress = progress_panel("music-cont-progress", MUSIC_READY)
                        cont_player = gr.Audio(label="Listen", type="filepath", interactive=False)
                        cont_roll = gr.Image(label="Pianoroll", type="filepath", interactive=False)
                        cont_info = gr.Markdown("")
                        cont_files = gr.File(label="Downloads", file_count="multiple")

            # -- Analyse -------------------------------------------------------------------------
            with gr.Tab("Analyse", id="music-analyse"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=4, min_width=300):
                        an_audio = gr.Audio(
                            label="Audio to analyse (≤ 10 min used)",
                            type="filepath",
                            sources=["upload", "microphone"],
                        )
                        an_midi = gr.File(
                            label="MIDI (optional: pianoroll; rendered if no audio)",
                            file_types=MIDI_TYPES,
                            type="filepath",
                        )
                        with gr.Row():
                            analyse_btn = gr.Button("Analyse", variant="primary")
                            analyse_last_btn = gr.Button("Analyse the last result")
                        an_summary = gr.Markdown("", elem_id="music-analysis")
                    with gr.Column(scale=7, min_width=320):
                        an_wave = gr.Image(label="Waveform and beats", type="filepath", interactive=False)
                        an_mel = gr.Image(label="Mel spectrogram", type="filepath", interactive=False)
                        an_roll = gr.Image(label="Pianoroll", type="filepath", interactive=False)

            # -- Text to music (MusicGen) --------------------------------------------------------
            with gr.Tab("Text to music (hub)", id="music-text"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=5, min_width=320):
                        mg_model = gr.Dropdown(
                            text_models,
                            value=ctx.registry.default_id(TEXT_TASK),
                            label="MusicGen model",
                            info="facebook/musicgen-small needs the network once and ~2.4 GB; the debug model makes noise",
                            allow_custom_value=True,
                        )
                        mg_prompt = gr.Textbox(
                            label="Prompt", lines=2, placeholder="calm lo-fi piano with soft drums"
                        )
                        with gr.Row():
                            mg_duration = gr.Slider(1, 30, value=8, step=1, label="Duration (s)")
                            mg_guidance = gr.Slider(0, 10, value=3, step=0.5, label="Guidance")
                        mg_seed = gr.Textbox(value="-1", label="Seed (-1 = random)")
                        with gr.Row():
                            mg_btn = gr.Button("Generate", variant="primary", scale=3)
                            mg_stop = gr.Button("Stop", variant="stop", scale=1)
                    with gr.Column(scale=6, min_width=320):
                        mg_progress = progress_panel("music-text-progress", "Ready.")
                        mg_player = gr.Audio(label="Listen", type="filepath", interactive=False)
                        mg_info = gr.Markdown("")
                        mg_files = gr.File(label="Downloads (WAV, MP3/OGG)", file_count="multiple")
        gr.Markdown(status_line(ctx), elem_classes=["studio-status-line"])

        # -- handlers ----------------------------------------------------------------------------
        def on_style(chosen: str) -> list[Any]:
            defaults = STYLE_DEFAULTS.get(chosen, STYLE_DEFAULTS["chorale"])
            names = _instrument_names(chosen)
            visible = [gr.Dropdown(value=names[i], visible=i < defaults["voices"]) for i in range(4)]
            return [gr.Slider(value=defaults["tempo"]), *visible]

        style.change(on_style, style, [tempo, *instruments], api_name=False)

        def finished(result: MusicResult, request: gr.Request) -> tuple[Any, ...]:
            note = f"**{result.summary}** · saved as #{result.record_id}"
            return (
                served(ctx, request, result.files.compressed), served(ctx, request, result.files.pianoroll),
                note, _downloads(ctx, request, result),
                str(result.files.wav), str(result.files.midi),
                status_html(f"Done: saved as #{result.record_id}"),
            )  # fmt: skip

        @friendly_errors
        def compose(
            style_name: str,
            key_name: str,
            bpm: float,
            n_bars: float,
            temp: float,
            seed_text: str,
            inst1: str,
            inst2: str,
            inst3: str,
            inst4: str,
            fmt: str,
            request: gr.Request,
            progress: gr.Progress = gr.Progress(),
        ) -> Iterator[tuple[Any, ...]]:
            music_request = ComposeRequest(
                style=style_name,
                key=key_name,
                tempo=float(bpm or 0),
                bars=n_bars if n_bars is not None else 8,
                temperature=float(temp),
                seed=parse_seed(seed_text),
                instruments=_programs((inst1, inst2, inst3, inst4)),
                audio_format=fmt,
            )
            with ctx.jobs.job(session_key(request), on_wait=turn_label(progress)) as cancel:
                # the bars show in the job's panel ("Bar 3/8"), not as Gradio's "steps" (Waiting still is)
                for event in follow(pipeline.compose(music_request, cancel), None, ctx, request):
                    if isinstance(event, Step):
                        skip = gr.skip()
                        yield skip, skip, skip, skip, skip, skip, bar_progress(event, "composing")
                    elif isinstance(event, Finished):
                        yield finished(event.result, request)

        compose_event = compose_btn.click(
            compose,
            [style, key, tempo, bars, temperature, seed, *instruments, audio_format],
            [player, roll, info, files, last_wav, last_midi, progress],
            api_name="music_compose",
            concurrency_id=HEAVY,
            concurrency_limit=HEAVY_ADMISSION,
            **progress_on(progress),  # the player and pianoroll stay uncovered
        )

        @friendly_errors
        def continue_piece(
            midi_path: str | None,
            audio_path: str | None,
            style_name: str,
            n_bars: float,
            key_name: str,
            bpm: float,
            temp: float,
            seed_text: str,
            request: gr.Request,
            progress: gr.Progress = gr.Progress(),
        ) -> Iterator[tuple[Any, ...]]:
            music_request = ContinueRequest(
                midi_path=midi_path or None,
                audio_path=None if midi_path else (audio_path or None),
                style=style_name,
                bars=n_bars if n_bars is not None else 8,
                key=key_name or "auto",
                tempo=float(bpm or 0),
                temperature=float(temp),
                seed=parse_seed(seed_text),
            )
            try:
                with ctx.jobs.job(session_key(request), on_wait=turn_label(progress)) as cancel:
                    for event in follow(pipeline.continue_piece(music_request, cancel), None, ctx, request):
                        if isinstance(event, Step):
                            skip = gr.skip()
                            yield skip, skip, skip, skip, skip, skip, bar_progress(event, "continuing")
                        elif isinstance(event, Finished):
                            result: MusicResult = event.result
                            out = list(finished(result, request))
                            out[2] += f" · the first {result.opening_notes} notes are your opening"
                            yield tuple(out)
            finally:
                discard_uploads(ctx, midi_path, audio_path)  # big uploads go once the job ends

        continue_event = continue_btn.click(
            continue_piece,
            [cont_midi, cont_audio, cont_style, cont_bars, cont_key, cont_tempo, cont_temperature, cont_seed],
            [cont_player, cont_roll, cont_info, cont_files, last_wav, last_midi, cont_progress],
            api_name="music_continue",
            concurrency_id=HEAVY,
            concurrency_limit=HEAVY_ADMISSION,
            **progress_on(cont_progress),
        )

        @friendly_errors
        def analyse(
            audio_path: str | None,
            midi_path: str | None,
            request: gr.Request,
            progress: gr.Progress = gr.Progress(),
        ) -> Iterator[tuple[Any, ...]]:
            try:
                with ctx.jobs.job(session_key(request), on_wait=turn_label(progress)) as cancel:
                    events = pipeline.analyse(AnalyseRequest(audio_path or None, midi_path or None), cancel)
                    for event in follow(events, progress, ctx, request):
                        if isinstance(event, Finished):
                            result: AnalysisResult = event.result
                            figs = result.figures
                            yield (
                                "**" + result.analysis.summary() + "**",
                                str(figs["waveform"]),
                                str(figs["mel"]),
                                str(figs["pianoroll"]) if "pianoroll" in figs else None,
                            )
            finally:
                discard_uploads(ctx, audio_path, midi_path)  # big uploads go once the job ends

        analyse_outputs = [an_summary, an_wave, an_mel, an_roll]
        analyse_options = dict(concurrency_id=HEAVY, concurrency_limit=HEAVY_ADMISSION)
        analyse_options |= progress_on(an_summary)  # the figures stay uncovered
        analyse_btn.click(
            analyse, [an_audio, an_midi], analyse_outputs, api_name="music_analyse", **analyse_options
        )
        analyse_last_btn.click(
            analyse, [last_wav, last_midi], analyse_outputs, api_name="music_analyse_last", **analyse_options
        )

        @friendly_errors
        def text_to_music(
            model_id: str,
            prompt: str,
            duration: float,
            guidance: float,
            seed_text: str,
            request: gr.Request,
            progress: gr.Progress = gr.Progress(),
        ) -> Iterator[tuple[Any, ...]]:
            music_request = TextToMusicRequest(
                prompt=prompt or "",
                duration_s=float(duration),
                guidance_scale=float(guidance),
                seed=parse_seed(seed_text),
                model_id=model_id or "",
            )
            with ctx.jobs.job(session_key(request), on_wait=turn_label(progress)) as cancel:
                for event in follow(pipeline.text_to_music(music_request, cancel), progress, ctx, request):
                    if isinstance(event, Step):
                        seconds = f"{event.info.get('seconds', 0):.1f} s of audio"
                        bar = progress_html(event.index, event.total, "Generating", seconds, unit="frames")
                        yield gr.skip(), gr.skip(), gr.skip(), bar
                    elif isinstance(event, Finished):
                        result: MusicResult = event.result
                        note = f"**{result.summary}** · saved as #{result.record_id}"
                        yield (
                            served(ctx, request, result.files.compressed),
                            note,
                            _downloads(ctx, request, result),
                            status_html(f"Done: saved as #{result.record_id}"),
                        )

        text_event = mg_btn.click(
            text_to_music,
            [mg_model, mg_prompt, mg_duration, mg_guidance, mg_seed],
            [mg_player, mg_info, mg_files, mg_progress],
            api_name="music_text_to_music",
            concurrency_id=HEAVY,
            concurrency_limit=HEAVY_ADMISSION,
            **progress_on(mg_progress),
        )
        stop = make_stop_handler(ctx)
        stop_btn.click(stop, None, None, api_name="music_stop", cancels=[compose_event])
        cont_stop.click(stop, None, None, api_name=False, cancels=[continue_event])
        mg_stop.click(stop, None, None, api_name=False, cancels=[text_event])

    return MusicPage(blocks, player, last_midi, send_to_video, last_wav)


if __name__ == "__main__":
    from pipelines.music import register_music_models
    from studio.settings import Settings

    standalone = StudioContext.create(Settings.from_env())
    register_music_models(standalone.registry, standalone.settings.data_dir)
    build(standalone).blocks.launch()
