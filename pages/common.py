"""What every page shares: turning pipeline events into Gradio progress, toasts and errors.

Pipelines raise `UserError` for bad input and yield typed events; pages never see a traceback.
"""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image, UnidentifiedImageError

from pages.serving import claim_results
from studio.context import StudioContext
from studio.events import Cancelled, Event, Finished, Notice, Started, Step, UserError
from studio.registry import ModelLoadError

log = logging.getLogger(__name__)

HEAVY = "heavy-model"  # shared concurrency_id of the big-model events across all tabs
# Gradio admits this many heavy events at once; they then take turns, one session after another,
# at the fair gate of studio.jobs (one job computes at a time), so a busy client cannot starve others.
# (each session may have studio.jobs.MAX_JOBS_PER_SESSION of them; admission leaves room for several sessions)
HEAVY_ADMISSION = 16


class SafeImage(gr.Image):
    """gr.Image whose upload decoding failure is a clear gr.Error, not a preprocessing traceback.

    Gradio decodes every uploaded image before the handler runs (even for type="filepath"), so a
    zero-byte or corrupt upload would otherwise fail with "Could not preprocess input component".
    """

    def get_block_name(self) -> str:
        return "image"  # same front-end component as gr.Image

    def preprocess(self, payload: Any) -> Any:
        if payload is not None:
            path = Path(getattr(payload, "path", "") or "")
            if path.is_file() and path.stat().st_size == 0:
                raise gr.Error(f"The uploaded image '{path.name}' is an empty (zero-byte) file.")
        try:
            return super().preprocess(payload)
        except Image.DecompressionBombError:
            raise gr.Error(
                "The uploaded image is too large (over ~180 megapixels); downscale it first."
            ) from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
            name = Path(getattr(payload, "orig_name", None) or getattr(payload, "path", "upload")).name
            raise gr.Error(
                f"The uploaded file '{name}' could not be read as an image ({type(error).__name__})."
            ) from None


def session_key(request: gr.Request | None) -> str:
    """The Gradio session hash keys the session's running job (for Stop)."""
    return getattr(request, "session_hash", None) or "anonymous"


def follow(
    events: Iterator[Event],
    progress: gr.Progress | None = None,
    ctx: StudioContext | None = None,
    request: gr.Request | None = None,
) -> Iterator[Event]:
    """Pass events through, showing Steps on the progress bar (with ETA) and Notices as toasts.

    With `ctx` and `request`, the results a Finished event saved are recorded as the requester's
    (History is per user with auth, per session on a public Space: see pages.serving).
    """
    for event in events:
        if isinstance(event, Finished) and ctx is not None:
            claim_results(ctx, request, event.result)
        if isinstance(event, Started) and progress is not None:
            progress((0, event.total), desc=event.label or "starting")
        elif isinstance(event, Step) and progress is not None:
            eta = f" · ETA {event.eta_s:.0f}s" if event.eta_s is not None else ""
            progress((event.index, event.total), desc=f"step {event.index}/{event.total}{eta}", unit="steps")
        elif isinstance(event, Notice):
            if event.level == "info":
                gr.Info(event.message)
            else:
                gr.Warning(event.message)
        yield event


def friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a (generator) event handler: UserError -> gr.Error; the server keeps serving."""

    def translate(error: BaseException) -> BaseException:
        if isinstance(error, gr.Error):
            return error
        if isinstance(error, (UserError, ModelLoadError)):
            return gr.Error(readable(str(error)))
        if isinstance(error, Cancelled):
            return gr.Error("Stopped.", title="Stopped")
        log.exception("unexpected error in %s", fn.__name__)
        return gr.Error(f"Something went wrong: {type(error).__name__}: {str(error)[:200]}")

    if _is_generator(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from fn(*args, **kwargs)
            except GeneratorExit:
                raise
            except Exception as error:  # noqa: BLE001 - translated for the user, logged above
                raise translate(error) from error

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - translated for the user, logged above
            raise translate(error) from error

    return wrapper


def readable(message: str, limit: int = 500) -> str:
    """A message a person reads: never the megabyte of input a hostile request echoed into it."""
    return message if len(message) <= limit else message[: limit - 1] + "…"


def _is_generator(fn: Callable[..., Any]) -> bool:
    import inspect

    return inspect.isgeneratorfunction(fn)


def turn_label(progress: gr.Progress | None) -> Callable[[int], None] | None:
    """While a heavy job waits its fair turn, say so on its progress bar."""
    if progress is None:
        return None

    def show(ahead: int) -> None:
        others = f"{ahead} job{'s' if ahead != 1 else ''} ahead" if ahead else "next"
        progress((0, 1), desc=f"Waiting for your turn · {others}")

    return show


def make_stop_handler(ctx: StudioContext) -> Callable[[gr.Request], None]:
    """Stop: cancel this session's job token. Pressing it twice, or with nothing running, is harmless."""

    def stop(request: gr.Request) -> None:
        if ctx.jobs.cancel(session_key(request)):
            gr.Info("Stopping after the current step…")

    return stop


# -- progress that never hides the result -------------------------------------------------------------
#
# A long job shows its progress in a small panel of its own (a label and a bar), and Gradio's progress
# overlay is pointed at that panel with `show_progress_on`, so the preview image, the parameters and
# the galleries the job updates are never covered while they stream.

PROGRESS_CLASS = "job-progress"


def progress_panel(elem_id: str, idle: str = "") -> gr.HTML:
    """The job's own progress line: where its label, its bar and Gradio's progress overlay show."""
    return gr.HTML(
        status_html(idle),
        elem_id=elem_id,
        elem_classes=[PROGRESS_CLASS],
        js_on_load=None,
        min_height=36,
        padding=False,
    )


def progress_html(done: float, total: float, label: str, detail: str = "", unit: str = "") -> str:
    """A label and a bar, bounded by the total: "Bar 8/8 · composing" never reads "bar 9/8"."""
    total = max(int(total), 1)
    done = min(max(int(done), 0), total)
    unit = f" {unit}" if unit else ""
    text = f"{label} {done}/{total}{unit}" + (f" · {detail}" if detail else "")
    return (
        f'<div class="job-progress-row" role="status">'
        f'<span class="job-progress-label">{html.escape(text)}</span>'
        f'<progress class="job-progress-bar" max="{total}" value="{done}" '
        f'aria-label="{html.escape(label)} {done} of {total}"></progress></div>'
    )


def status_html(text: str) -> str:
    """The panel's line when no bar is running (ready, done, stopped)."""
    if not text:
        return '<div class="job-progress-row job-progress-idle"></div>'
    return (
        f'<div class="job-progress-row job-progress-idle" role="status">'
        f'<span class="job-progress-label">{html.escape(text)}</span></div>'
    )


def progress_on(target: gr.components.Component | list[Any], show: str = "minimal") -> dict[str, Any]:
    """Event options: Gradio's progress shows on `target` only, never over the job's other outputs."""
    targets = target if isinstance(target, list) else [target]
    return {"show_progress": show, "show_progress_on": targets}


# -- the device, in plain words ----------------------------------------------------------------------


def status_line(ctx: StudioContext) -> str:
    """The one line a user needs about where things run ("Running on this computer's CPU · offline").

    The device plan (dtype, memory tier, free memory) lives in the Settings and device plan panel.
    """
    device = str(ctx.plan.device)
    if device.startswith("cuda"):
        where = "this computer's graphics card (GPU)"
    elif device == "mps":
        where = "this Mac's graphics chip"
    else:
        where = "this computer's CPU"
    text = f"Running on {where}"
    if ctx.settings.offline:
        text += " · offline"
    return text


def plan_markdown(ctx: StudioContext, applied: tuple[str, ...] | list[str] = ()) -> str:
    """One line describing the device plan in force (and what a loaded model applied)."""
    text = f"**Device plan:** {ctx.plan.describe()}"
    if applied:
        text += f" · applied: {', '.join(applied)}"
    if ctx.settings.offline:
        text += " · offline mode"
    return text


def history_gallery(elem_id: str) -> gr.Gallery:
    """The History accordion's gallery: whole images (contain, never cropped), six to a row."""
    return gr.Gallery(
        label="Saved results", columns=6, height=320, object_fit="contain", fit_columns=False, elem_id=elem_id
    )
