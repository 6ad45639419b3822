"""The disk part of the Settings panel: sizes, retention, model caches, and pinning a result.

Built inside the app's Settings accordion (components are created in the caller's Blocks context).
"""

from __future__ import annotations

import gradio as gr

from pages.common import friendly_errors
from pages.serving import viewer
from studio.context import StudioContext
from studio.events import UserError
from studio.retention import MB, folder_bytes, model_caches
from studio.retention import clear_model_caches as clear_caches


def may_manage(ctx: StudioContext) -> bool:
    """Clearing caches affects everyone: allowed locally and for logged-in users, not for strangers."""
    return ctx.settings.scope == "all" or bool(ctx.settings.auth_pair)


def disk_markdown(ctx: StudioContext) -> str:
    settings = ctx.settings
    results_mb = ctx.store.results_bytes() / MB
    cache_mb = folder_bytes(settings.upload_dir) / MB
    return (
        f"**Results:** {ctx.store.count()} in `{ctx.store.root}` · {results_mb:.1f} MB · "
        f"{settings.retention.describe()}  \n"
        f"**Upload cache:** {cache_mb:.1f} MB · {settings.upload_cache.describe()} · "
        f"max upload {settings.max_upload_mb} MB  \n"
        f"**History:** scope *{settings.scope}* · database in the data folder (never served)"
    )


def cache_rows(ctx: StudioContext) -> list[list]:
    return [
        [c.name, round(c.bytes / MB, 1), "in use" if c.in_use else ""]
        for c in model_caches(ctx.settings.data_dir, ctx.registry.loaded_ids())
    ]


def build_disk_panel(ctx: StudioContext) -> None:
    """Disk usage, model caches with a clear button, and the pin control (call inside a Blocks)."""
    usage = gr.Markdown(disk_markdown(ctx))
    caches = gr.Dataframe(
        cache_rows(ctx),
        headers=["model cache (data folder)", "MB", "status"],
        interactive=False,
        label="Model caches (rebuilt on next use when cleared)",
    )
    with gr.Row():
        refresh = gr.Button("Refresh disk usage", size="sm")
        clear = gr.Button("Clear model caches not in use", size="sm", interactive=may_manage(ctx))
        retention = gr.Button("Apply retention now", size="sm")
    with gr.Row():
        record_id = gr.Number(label="Result # (shown in History)", precision=0, minimum=1)
        pinned = gr.Checkbox(label="Pinned (kept by retention)", value=True)
        pin = gr.Button("Pin / unpin", size="sm")
    pin_status = gr.Markdown()

    def refresh_all() -> tuple[str, list[list]]:
        return disk_markdown(ctx), cache_rows(ctx)

    @friendly_errors
    def clear_unused() -> tuple[str, list[list]]:
        if not may_manage(ctx):
            raise UserError("Clearing model caches needs a local app or a logged-in user.")
        removed = clear_caches(ctx.settings.data_dir, ctx.registry.loaded_ids())
        gr.Info(f"Cleared {len(removed)} caches ({sum(c.bytes for c in removed) / MB:.1f} MB).")
        return refresh_all()

    def apply_retention() -> tuple[str, list[list]]:
        report = ctx.store.enforce()
        gr.Info(f"Removed {report.removed_records} results ({report.removed_bytes / MB:.1f} MB).")
        return refresh_all()

    @friendly_errors
    def set_pin(number: float | None, keep: bool, request: gr.Request) -> str:
        if number is None or number < 1:
            raise UserError("Enter the number of a result, as shown in History (#12).")
        if not ctx.store.set_pinned(int(number), keep, owner=viewer(ctx, request)):
            raise UserError(f"There is no result #{int(number)} of yours.")
        return f"Result #{int(number)} is {'pinned' if keep else 'no longer pinned'}."

    refresh.click(refresh_all, None, [usage, caches], api_name="disk_usage")
    clear.click(clear_unused, None, [usage, caches], api_name="clear_model_caches")
    retention.click(apply_retention, None, [usage, caches], api_name="apply_retention")
    pin.click(set_pin, [record_id, pinned], pin_status, api_name="pin_result")
