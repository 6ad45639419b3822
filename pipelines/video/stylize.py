"""Stylize a clip: every frame through the Style pipeline, kept steady with optical flow, audio kept.

    events = stylize_clip(request, registry, store, cancel)   # UserError here for bad input
    for event in events: ...   # Started -> Notice* -> Step (one per frame, preview + ETA)* -> Finished

1. `probe` the upload (sniffed, never trusted by its name) and `plan_read` the trim, constant frame
   rate and even output size within `VideoLimits`; every adjustment is a Notice.
2. Stream the frames from ffmpeg; style each with `pipelines.style.FrameStyler` (any of the 26 styles
   or a blend, any style image, or a filter; strength and preserve colours as on the Style tab).
3. Carry the previous output along the source's optical flow and blend it in where the flow is
   consistent (`flow.temporal_blend`, weight = `consistency`); frame by frame when it is 0.
4. Encode H.264 yuv420p as the frames come; at the end remux the clip's audio over the same start/end
   into the OutputStore (atomic write) and record it in History. Cancel is checked every frame; a
   cancelled job writes nothing to the store.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipelines.style import FrameStyler, StyleRequest
from pipelines.video.flow import DEFAULT_PRESET, PRESETS, FlowEstimator, temporal_blend
from pipelines.video.io import (
    DEFAULT_LIMITS,
    Mp4Writer,
    ReadPlan,
    VideoLimits,
    finish_mp4,
    iter_frames,
    plan_read,
)
from pipelines.video.probe import VideoInfo, probe
from studio.events import CancelToken, EtaClock, Event, Finished, Notice, Started, Step, UserError
from studio.registry import ModelRegistry
from studio.store import OutputStore

log = logging.getLogger(__name__)

STORE_TASK = "video"  # output folder and History task
DEFAULT_CONSISTENCY = 0.8


def _default_style() -> StyleRequest:
    return StyleRequest(content=None)


@dataclass(frozen=True)
class StylizeRequest:
    clip: Any  # path of the uploaded video (str/Path, or an object with .path / .name)
    style: StyleRequest = field(default_factory=_default_style)  # mode, styles/blend, style image,
    # filter, strength and preserve colours, as on the Style tab (its `content` is ignored)
    consistency: float = DEFAULT_CONSISTENCY  # 0 = frame by frame; towards 1 = steadier, more smearing
    size: int = 0  # output long side in px; 0 = the clip's own (at most VideoLimits.max_side)
    fps: float = 0.0  # output frame rate; 0 = the clip's own (at most VideoLimits.max_fps)
    start: float = 0.0  # seconds into the clip
    end: float = 0.0  # seconds; 0 = to the end (at most VideoLimits.max_seconds after start)
    keep_audio: bool = True  # remux the clip's audio (copied when MP4 takes it, else AAC)
    flow_preset: str = DEFAULT_PRESET  # DIS optical flow preset: ultrafast | fast | medium
    preview_every: int = 1  # a preview frame every N frames (0 = none)
    title: str = ""  # what History shows; defaults to the style and the clip's name


@dataclass(frozen=True)
class StylizeResult:
    path: Path | None  # the saved MP4 (None when cancelled)
    record_id: int | None
    frames: int  # frames written
    fps: float
    size: tuple[int, int]  # width, height
    duration: float  # seconds of video (frames / fps)
    has_audio: bool  # the saved MP4 carries the clip's audio
    seconds: float  # wall time
    last_frame: Image.Image | None  # the last output frame (a poster for the page)
    params: dict[str, Any] = field(default_factory=dict)  # what History recorded
    notices: tuple[str, ...] = ()
    cancelled: bool = False


def stylize_clip(
    request: StylizeRequest,
    registry: ModelRegistry,
    store: OutputStore,
    cancel: CancelToken,
    limits: VideoLimits = DEFAULT_LIMITS,
) -> Iterator[Event]:
    """Check the request, the clip and the style now (UserError before any frame is decoded), then
    return the generator of events: Started, Notice*, one Step per frame (preview = PIL image of the
    output frame, eta_s, info={"fps": frames/s so far}), Finished(StylizeResult)."""
    if not 0.0 <= float(request.consistency) <= 1.0:
        raise UserError(f"Consistency must be between 0 and 1 (got {request.consistency}).")
    if request.flow_preset not in PRESETS:
        raise UserError(f"Unknown flow preset {request.flow_preset!r}; choose one of {', '.join(PRESETS)}.")
    if request.clip is None:
        raise UserError("Upload a video clip first.")
    info = probe(request.clip)
    plan = plan_read(info, request.size, request.fps, request.start, request.end or None, limits)
    styler = FrameStyler(registry, request.style)
    return _run(request, info, plan, styler, store, cancel)


def _run(
    request: StylizeRequest,
    info: VideoInfo,
    plan: ReadPlan,
    styler: FrameStyler,
    store: OutputStore,
    cancel: CancelToken,
) -> Iterator[Event]:
    started = time.perf_counter()
    total = plan.frames
    weight = float(request.consistency)
    steady = "frame by frame" if weight <= 0 else f"flow-blended {weight:g}"
    yield Started(total, f"{styler.label} · {plan.width}×{plan.height} · {plan.fps:g} fps · {steady}")
    notices = [*plan.notices, *styler.notices]
    keep_audio = bool(request.keep_audio and info.has_audio)
    if request.keep_audio and not info.has_audio:
        notices.append("The clip has no audio track, so the video is silent.")
    for message in notices:
        yield Notice(message, level="warning" if message in plan.notices else "info")
    flows = FlowEstimator(request.flow_preset) if weight > 0 else None
    clock = EtaClock(total)
    previous: np.ndarray | None = None
    last: np.ndarray | None = None
    done, cancelled = 0, False
    frames = iter_frames(info, plan)
    damaged: list[str] = []  # a decoding failure after some frames: keep those, say so
    scratch = Path(tempfile.mkdtemp(prefix="studio-stylize-"))  # the encode in progress, never in the store
    writer: Mp4Writer | None = None
    try:
        writer = Mp4Writer(scratch / "video.mp4", plan.width, plan.height, plan.fps)
        for frame in _until_damaged(frames, damaged):
            if cancel.cancelled:
                cancelled = True
                break
            # 1. the style, then 2. the previous output pulled along the source's motion
            out = styler.style(frame)
            pair = flows.push(frame) if flows is not None else None
            if pair is not None and previous is not None:
                out = temporal_blend(out, previous, pair, weight)
            previous = out
            last = (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
            writer.write(last)
            done += 1
            every = int(request.preview_every)
            preview = Image.fromarray(last) if every and (done % every == 0 or done == 1) else None
            rate = done / max(time.perf_counter() - started, 1e-6)
            yield Step(done, max(total, done), preview, clock.eta(done), {"fps": rate})
        writer.close()
        cancelled = cancelled or cancel.cancelled
        poster = Image.fromarray(last) if last is not None else None
        size = (plan.width, plan.height)
        if cancelled:
            yield Notice(f"Stopped after {done} of {total} frames; nothing was saved.", level="info")
            yield Finished(
                StylizeResult(
                    None,
                    None,
                    done,
                    plan.fps,
                    size,
                    done / plan.fps,
                    False,
                    time.perf_counter() - started,
                    poster,
                    cancelled=True,
                )
            )
            return
        if damaged:
            notices.append(damaged[0])
            yield Notice(notices[-1])
        elif done < total - 1:
            notices.append(
                f"The clip ended after {done} of the expected {total} frames (the file may be truncated); "
                "the video holds those frames."
            )
            yield Notice(notices[-1])
        duration = done / plan.fps
        mux_notes: list[str] = []

        def save(tmp: Path) -> None:
            note = finish_mp4(
                writer.path, tmp, info.path if keep_audio else None, info.audio_codec, plan.start, duration
            )
            if note:
                mux_notes.append(note)

        path = store.write(STORE_TASK, ".mp4", save)
        for note in mux_notes:
            yield Notice(note, level="info")
        has_audio = keep_audio and probe(path).has_audio
        seconds = time.perf_counter() - started
        params = {
            "kind": "stylize",
            "clip": info.path.name,
            "clip_size": [info.width, info.height],
            "clip_fps": info.fps,
            "clip_duration": info.duration,
            "start": plan.start,
            "end": plan.start + duration,
            "fps": plan.fps,
            "size": list(size),
            "frames": done,
            "consistency": weight,
            "flow_preset": request.flow_preset,
            "keep_audio": request.keep_audio,
            "has_audio": has_audio,
            "style": styler.params(),
            "seconds": round(seconds, 2),
        }
        title = request.title or f"{styler.label} · {info.path.name}"
        record = store.record(STORE_TASK, title, params, [path])
        yield Finished(
            StylizeResult(
                path,
                record.id,
                done,
                plan.fps,
                size,
                duration,
                has_audio,
                seconds,
                poster,
                params,
                tuple(notices + mux_notes),
            )
        )
    finally:
        frames.close()  # stops the decoder at once when cancelled or abandoned
        if writer is not None:
            writer.close()  # idempotent: stops the encoder if a frame failed or the consumer left
        shutil.rmtree(scratch, ignore_errors=True)


def _until_damaged(frames: Iterator[np.ndarray], damaged: list[str]) -> Iterator[np.ndarray]:
    """The decoded frames; when decoding fails after some frames, the clip ends there (noted in
    `damaged`) so the work done is kept. A failure before the first frame is the user's error."""
    count = 0
    try:
        for frame in frames:
            count += 1
            yield frame
    except UserError as error:
        if count == 0:
            raise
        damaged.append(f"{error} The video holds the {count} frames before that point.")
