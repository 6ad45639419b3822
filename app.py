"""Creative Studio: one Gradio app, one tab per creative task.

    python app.py [--host H] [--port P] [--share] [--offline] [--device D] [--tier T] ...

Locally it binds 127.0.0.1; on a Hugging Face Space (SPACE_ID set) 0.0.0.0. Gradio serves no folder of
ours: results reach the browser only through per-owner links in Gradio's own cache (pages/serving.py),
the History database lives in the data dir, uploads are capped and their cache is bounded; auth comes
from STUDIO_AUTH="user:password" when set.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path

from studio.context import StudioContext
from studio.settings import Settings

log = logging.getLogger("creative_studio")
ASSETS = Path(__file__).parent / "assets"


def parse_settings(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(description="Creative Studio")
    parser.add_argument("--host", help="bind address (default 127.0.0.1; 0.0.0.0 on a Space)")
    parser.add_argument("--port", type=int)
    parser.add_argument("--share", action="store_true", default=None, help="create a public gradio link")
    parser.add_argument("--offline", action="store_true", default=None, help="embedded models only")
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps")
    parser.add_argument("--tier", help="auto | high | normal | low | minimal")
    parser.add_argument("--threads", type=int, help="torch threads (1 is fastest on a shared 2-core box)")
    parser.add_argument(
        "--output-dir", dest="output_dir", help="results and history (the only served folder)"
    )
    parser.add_argument("--data-dir", dest="data_dir", help="model caches")
    parser.add_argument("--art-model", dest="art_model", help="default Art Platform model (hub id or folder)")
    parser.add_argument(
        "--writing-model", dest="writing_model", help="default Writing model (hub id or folder)"
    )
    args = parser.parse_args(argv)
    return Settings.from_env().with_overrides(**vars(args))


def prepare_environment(settings: Settings) -> None:
    """Environment that must be set before gradio/huggingface_hub read it."""
    cache = settings.upload_dir.resolve()
    cache.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(cache)  # uploads and served links stay inside the output dir
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if settings.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"  # fail fast instead of retrying the network


def create_context(settings: Settings) -> StudioContext:
    """Context plus every task's registry entries (nothing is loaded yet)."""
    from pipelines.art import register_art_models
    from pipelines.memory import apply_plan_to_causal_lm
    from pipelines.music import register_music_models
    from pipelines.style import register_style_models
    from pipelines.video import register_video_models
    from pipelines.writing import register_writing_models

    ctx = StudioContext.create(settings)
    register_art_models(ctx.registry, settings.data_dir)
    register_music_models(ctx.registry, settings.data_dir)
    register_style_models(ctx.registry, settings.data_dir)
    register_video_models(ctx.registry, settings.data_dir)
    # LOW/MINIMAL tiers: int8 (and pruning where it passes its check) through the writing loader's hook
    register_writing_models(ctx.registry, settings.data_dir, quantizer=apply_plan_to_causal_lm)
    return ctx


def build_app(ctx: StudioContext):
    """Compose the pages into one Blocks app with tabs."""
    import gradio as gr

    from pages import art_platform, writing_assistant
    from pages import music as music_page
    from pages import style_transfer as style_page
    from pages import video as video_page
    from pages.common import plan_markdown
    from pages.disk_panel import build_disk_panel
    from pages.video_send_to import wire_send_to
    from pipelines.memory import loaded_model_rows

    # 1. build each page as its own Blocks (each can also launch alone), outside the app's context
    writing = writing_assistant.build(ctx)
    art = art_platform.build(ctx)
    music = music_page.build(ctx)
    style = style_page.build(ctx)
    video = video_page.build(ctx)

    # 2. render them into tabs; cross-tab wiring goes after all tabs are rendered
    # Gradio's own cache cleanup (files it tracks), on top of pages.serving's size- and age-bounded sweep
    cache_age = int(ctx.settings.upload_cache.max_age_s)
    delete_cache = (min(max(cache_age, 60), 3600), max(cache_age, 60)) if cache_age > 0 else None
    with gr.Blocks(title="Creative Studio", delete_cache=delete_cache) as demo:
        gr.Markdown("# Creative Studio\nWrite, paint, compose and restyle — offline-first, hub-ready.")
        # "wrap": on a phone every tab stays a visible button (a second row), never behind a "•••" menu
        with gr.Tabs(overflow_behavior="wrap", elem_id="studio-tabs") as tabs:
            with gr.Tab("Writing Assistant", id="writing"):
                writing.blocks.render()
            with gr.Tab("Art Platform", id="art"):
                art.blocks.render()
            with gr.Tab("Music", id="music"):
                music.blocks.render()
            with gr.Tab("Style Transfer", id="style"):
                style.blocks.render()
            with gr.Tab("Video", id="video"):
                video.blocks.render()
        with gr.Accordion("Settings and device plan", open=False):
            plan_line = gr.Markdown(plan_markdown(ctx))
            with gr.Row():
                tier_choice = gr.Dropdown(
                    ["auto", "high", "normal", "low", "minimal"],
                    value=ctx.settings.tier or "auto",
                    label="Memory tier (unloads loaded models; applies to models loaded from now on)",
                )
                refresh_memory = gr.Button("Refresh loaded models", size="sm")
            loaded_models = gr.Dataframe(
                loaded_model_rows(ctx.registry),
                headers=["model", "tier", "resident MB", "applied"],
                interactive=False,
                label="Loaded models (parameter + buffer memory)",
            )

            def set_tier(tier: str) -> tuple[str, list]:
                ctx.registry.set_tier(tier)
                return plan_markdown(ctx), loaded_model_rows(ctx.registry)

            tier_choice.change(set_tier, tier_choice, [plan_line, loaded_models], api_name="set_tier")
            refresh_memory.click(
                lambda: (plan_markdown(ctx), loaded_model_rows(ctx.registry)),
                None,
                [plan_line, loaded_models],
                api_name="loaded_models",
            )
            gr.Markdown(
                f"Output folder: `{ctx.store.root}` · max upload {ctx.settings.max_upload_mb} MB · "
                f"threads {ctx.settings.threads} · offline {'on' if ctx.settings.offline else 'off'}"
            )
            build_disk_panel(ctx)
        art.send_to_style.click(
            lambda path: (path, gr.Tabs(selected="style")),
            art.result_image,
            [style.content_image, tabs],
            api_name=False,
        )
        wire_send_to(video, tabs, art=art, style=style, music=music)
    return demo


def launch_kwargs(settings: Settings) -> dict:
    """The security-relevant launch settings, in one place (and testable).

    No folder is allowed: results are served through links in Gradio's cache (pages/serving.py), so
    the output dir itself, the data dir and the History database are never reachable over HTTP.
    """
    return dict(
        server_name=settings.bind_host,
        server_port=settings.port,
        share=settings.share,
        auth=settings.auth_pairs or None,
        max_file_size=f"{settings.max_upload_mb}mb",
        allowed_paths=[],
        blocked_paths=[str(settings.data_dir.resolve()), str(settings.history_path.resolve())],
        css_paths=[ASSETS / "studio.css"],
        show_error=True,
    )


def launch(demo, settings: Settings, ctx: StudioContext | None = None, **overrides):
    """Queue + launch with the security settings; returns what gradio's launch returns.

    With `ctx`, the upload cache is swept after every upload and on a timer, result retention runs on
    the timer too, and (auth on) result links are refused to other users.
    """
    kwargs = launch_kwargs(settings)
    out = settings.output_dir.resolve()
    if not (out.is_relative_to(Path.cwd()) or out.is_relative_to(Path(tempfile.gettempdir()).resolve())):
        # gradio copies a returned file only from the working dir or temp dir; pages.serving.served() works anywhere
        log.warning(
            "output dir %s is outside the working dir: pages must return results through served()", out
        )
    if ctx is not None:
        from starlette.middleware import Middleware

        from pages.serving import CacheSweeper, ResultGuard, start_housekeeping

        sweeper = CacheSweeper(ctx)
        sweeper.sweep(force=True)  # whatever an earlier run left behind
        start_housekeeping(ctx, sweeper)
        kwargs["app_kwargs"] = {"middleware": [Middleware(ResultGuard, ctx=ctx, sweeper=sweeper)]}
    demo.queue(default_concurrency_limit=2, max_size=64)
    return demo.launch(**{**kwargs, **overrides})


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = parse_settings(argv)
    prepare_environment(settings)
    ctx = create_context(settings)
    log.info(
        "Creative Studio on http://%s:%s (output: %s)", settings.bind_host, settings.port, ctx.store.root
    )
    launch(build_app(ctx), settings, ctx)


if __name__ == "__main__":
    main()
