"""Progress never hides the preview: every long job shows Gradio's progress on a component of its own.

Unit level (no server): the built app's event wiring. The browser test (tests/browser/test_first_minute.py)
checks the same thing on screen.
"""

from __future__ import annotations

import gradio as gr
import pytest

from pages.common import PROGRESS_CLASS, progress_html, status_html

# api_name -> elem_id of the component that must carry the progress (a panel, or the job's status line)
LONG_JOBS = {
    "writing_generate": "writing-stats",
    "writing_outline": "writing-stats",
    "writing_article": "writing-stats",
    "art_generate": "art-progress",
    "art_inpaint": "art-progress",
    "art_xyz": "xyz-status",
    "art_expand_prompt": "art-final-prompt",
    "music_compose": "music-progress",
    "music_continue": "music-cont-progress",
    "music_text_to_music": "music-text-progress",
    "music_analyse": "music-analysis",
    "music_analyse_last": "music-analysis",
    "style_transfer": "style-progress",
    "style_transfer_hq": "style-progress",
    "video_stylize": "video-stylize-progress",
    "video_animate": "video-animate-progress",
    "video_text_to_video": "video-t2v-progress",
}
# what the user watches while a job runs: never a progress target
WATCHED = (gr.Image, gr.Gallery, gr.ImageSlider, gr.Audio, gr.Video, gr.File)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    from app import build_app, create_context
    from studio.settings import Settings

    folder = tmp_path_factory.mktemp("progress-ui")
    settings = Settings(output_dir=folder / "outputs", data_dir=folder / "data", offline=True)
    return build_app(create_context(settings))


def _by_api_name(demo) -> dict[str, object]:
    return {fn.api_name: fn for fn in demo.fns.values() if fn.api_name}


def test_every_long_job_shows_progress_on_its_own_component(demo) -> None:
    fns = _by_api_name(demo)
    missing = sorted(set(LONG_JOBS) - set(fns))
    assert not missing, f"events not found: {missing}"
    for api_name, target_id in LONG_JOBS.items():
        fn = fns[api_name]
        targets = fn.show_progress_on or []
        assert [t.elem_id for t in targets] == [target_id], (api_name, [t.elem_id for t in targets])
        assert not any(isinstance(t, WATCHED) for t in targets), api_name
        # the job's previews and results are outputs that the progress never covers
        uncovered = [o for o in fn.outputs if o not in targets and isinstance(o, WATCHED + (gr.Textbox,))]
        assert uncovered or api_name.startswith("writing_") or api_name == "art_expand_prompt", api_name


def test_progress_panels_are_outputs_with_the_panel_class(demo) -> None:
    fns = _by_api_name(demo)
    for api_name in ("art_generate", "art_inpaint", "music_compose", "music_continue", "style_transfer"):
        fn = fns[api_name]
        (panel,) = fn.show_progress_on
        assert isinstance(panel, gr.HTML) and PROGRESS_CLASS in (panel.elem_classes or []), api_name
        assert panel in fn.outputs, api_name  # the page writes its own label and bar into it
        assert fn.show_progress == "minimal"  # a small timer/queue note; the page's own bar stays readable


def test_top_tabs_and_sub_tabs_wrap_instead_of_a_menu(demo) -> None:
    tabs = [block for block in demo.blocks.values() if isinstance(block, gr.Tabs)]
    assert tabs and all(t.overflow_behavior == "wrap" for t in tabs), [t.elem_id for t in tabs]


def test_progress_label_is_bounded_by_the_total() -> None:
    text = progress_html(9, 8, "Bar", "composing")
    assert "Bar 8/8 · composing" in text and 'value="8"' in text and 'max="8"' in text
    assert "Bar 0/8" in progress_html(-3, 8, "Bar")
    assert "<script>" not in progress_html(1, 2, "Step", "<script>")  # escaped
    assert status_html("") and "Done" in status_html("Done")


def test_music_bar_label_uses_the_pipelines_bar_count() -> None:
    from pages.music import bar_progress
    from studio.events import Step

    step = Step(9, 9, None, None, {"bars": 8, "bars_total": 8, "stage": "rendered"})
    assert "Bar 8/8 · audio rendered" in bar_progress(step, "composing")
    step = Step(3, 9, None, None, {"bars": 3, "bars_total": 8})
    assert "Bar 3/8 · composing" in bar_progress(step, "composing")


def test_main_view_status_is_plain_language(demo, ctx) -> None:
    from pages.common import status_line

    line = status_line(ctx)
    assert line.startswith("Running on this computer's") and line.endswith("offline"), line
    # the device plan's details (dtype, tier, free memory) are only in the Settings panel
    technical = [
        b.value
        for b in demo.blocks.values()
        if isinstance(b, gr.Markdown) and isinstance(b.value, str) and "tier " in b.value
    ]
    assert len(technical) == 1 and technical[0].startswith("**Device plan:**"), technical
