"""Video pipeline: stylize a clip, animate between prompts (prompt travel), hub text-to-video.

Each entry point returns an iterator of studio events (Started -> Step(preview, eta)* ->
Finished(result), Notices on the way) and raises UserError at once for a request that is wrong
whatever the model. Every finished video is an H.264 yuv420p MP4 saved through the OutputStore
(task "video") and recorded in History with its parameters.

- `stylize`: pipelines.video.stylize (every frame through the Style pipeline, flow-blended, audio kept);
- `animate`: pipelines.video.animate (Art frames along a keyframe path), then optional style and
  flow smoothing per frame, then an optional soundtrack (pipelines.video.soundtrack);
- `text_to_video`: pipelines.video.text_to_video (a diffusers text-to-video pipeline).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipelines.art import PromptTravel
from pipelines.music import MusicPipeline
from pipelines.style import FrameStyler
from pipelines.video import soundtrack as tracks
from pipelines.video.animate import (
    MAX_FRAMES,
    AnimateRequest,
    TravelFrames,
    art_request,
    pad_even,
    render_travel,
    validate,
)
from pipelines.video.flow import FlowEstimator, temporal_blend
from pipelines.video.io import write_mp4
from pipelines.video.stylize import STORE_TASK, StylizeRequest, stylize_clip
from studio.events import CancelToken, Event, Notice
from studio.registry import ModelRegistry
from studio.store import OutputStore
from studio.worker import Emit, stream_events

log = logging.getLogger(__name__)

TASK = STORE_TASK  # "video": output folder and History task of all three sections


@dataclass(frozen=True)
class AnimateResult:
    path: Path | None  # the saved MP4 (None when stopped before two frames were done)
    record_id: int | None
    frames: int  # frames in the video
    fps: float
    size: tuple[int, int]  # width, height
    duration: float  # seconds
    seeds: tuple[int, ...]  # the seed used per keyframe
    model: str
    seconds_per_frame: float  # Art rendering time per frame
    soundtrack: str | None  # the soundtrack's title, when there is one
    last_frame: Image.Image | None  # a poster for the page
    raw_frames: list[Image.Image] = field(default_factory=list, repr=False)  # the Art frames as drawn
    parameters: str = ""  # the first frame's Art infotext
    params: dict[str, Any] = field(default_factory=dict)  # what History recorded
    cancelled: bool = False


class VideoPipeline:
    def __init__(self, registry: ModelRegistry, store: OutputStore, art_model: str = "") -> None:
        self.registry = registry
        self.store = store
        self.travel = PromptTravel(registry, art_model)
        self.music = MusicPipeline(registry, store)

    # -- stylize a clip ----------------------------------------------------------------------------
    def stylize(self, request: StylizeRequest, cancel: CancelToken) -> Iterator[Event]:
        """Style every frame of a clip, steadied with optical flow; the clip's audio is kept."""
        return stylize_clip(request, self.registry, self.store, cancel)

    # -- prompt travel -----------------------------------------------------------------------------
    def animate(self, request: AnimateRequest, cancel: CancelToken) -> Iterator[Event]:
        """Prompt travel on an Art model; UserError now for a bad request (before anything loads)."""
        request = validate(request)
        self.travel.check(art_request(request))
        styler = FrameStyler(self.registry, request.style) if request.style is not None else None
        return stream_events(lambda emit: self._animate(request, styler, cancel, emit), cancel)

    def _animate(
        self, request: AnimateRequest, styler: FrameStyler | None, cancel: CancelToken, emit: Emit
    ) -> AnimateResult:
        for message in styler.notices if styler is not None else []:
            emit(Notice(message, "info"))
        # 1. the soundtrack first: with "follow" it sets the frame count
        sound = tracks.resolve(request.soundtrack, self.store, self.music, cancel, emit)
        if sound is not None and request.soundtrack.fit == "follow":
            frames, note = tracks.frames_for(sound, float(request.fps), MAX_FRAMES, len(request.keyframes))
            if note:
                emit(Notice(note))
            request = replace(request, frames=frames)
        # 2. the frames: Art along the keyframe path, each finished (style, smoothing) as it comes
        travel = render_travel(request, self.travel, cancel, emit, _finisher(styler, request.smoothing))
        if len(travel.outputs) < 2:
            emit(Notice("Stopped before two frames were done; nothing was saved.", "info"))
            return _empty_result(request, travel)
        if travel.cancelled:
            emit(
                Notice(
                    f"Stopped after {len(travel.outputs)} of {request.frames} frames; those were saved.",
                    "info",
                )
            )
        # 3. encode (and mux the soundtrack) straight into the store, then record
        fps = float(request.fps)
        duration = len(travel.outputs) / fps
        notes: list[str] = []
        path = self.store.write(
            TASK, ".mp4", lambda tmp: notes.extend(_encode(travel, fps, sound, request, tmp))
        )
        for note in notes:
            emit(Notice(note, "info"))
        height, width = travel.outputs[0].shape[:2]
        params = _record_params(request, travel, (width, height), duration, sound, styler)
        title = request.title or " → ".join(dict.fromkeys(travel.prompts))[:200]
        record = self.store.record(TASK, title, params, [path])
        return AnimateResult(
            path,
            record.id,
            len(travel.outputs),
            fps,
            (width, height),
            duration,
            travel.seeds,
            travel.model,
            travel.seconds_per_frame,
            sound.title if sound is not None else None,
            Image.fromarray(travel.outputs[-1]),
            travel.frames,
            travel.parameters,
            params,
            travel.cancelled,
        )

    # -- hub text-to-video -------------------------------------------------------------------------
    def text_to_video(self, request: Any, cancel: CancelToken) -> Iterator[Event]:
        """A diffusers text-to-video model: step previews, Stop, MP4 into History."""
        from pipelines.video.text_to_video import generate_video

        return generate_video(request, self.registry, self.store, cancel)


def _finisher(styler: FrameStyler | None, smoothing: float) -> Callable[[Image.Image], np.ndarray]:
    """raw Art frame -> output frame: the style, then the previous output carried along the flow."""
    flows = FlowEstimator() if smoothing > 0 else None
    state: dict[str, np.ndarray] = {}

    def finish(frame: Image.Image) -> np.ndarray:
        raw = np.asarray(frame.convert("RGB"))
        out = styler.style(raw) if styler is not None else raw.astype(np.float32) / 255.0
        if flows is not None:
            pair = flows.push(raw)  # the motion of the drawn frames, not of the styled ones
            if pair is not None and "previous" in state:
                out = temporal_blend(out, state["previous"], pair, smoothing)
            state["previous"] = out
        return pad_even((np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))

    return finish


def _encode(
    travel: TravelFrames, fps: float, sound: tracks.Soundtrack | None, request: AnimateRequest, out: Path
) -> list[str]:
    """Frames -> H.264 MP4 at `out` (with the soundtrack muxed in when there is one); notices."""
    if sound is None:
        _, note = write_mp4(travel.outputs, out, fps)
        return [note] if note else []
    scratch = Path(tempfile.mkdtemp(prefix="studio-animate-"))
    try:
        silent = scratch / "silent.mp4"
        write_mp4(travel.outputs, silent, fps)
        note = tracks.mux(silent, sound, out, len(travel.outputs) / fps, request.soundtrack.fade_s)
        return [note] if note else []
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _record_params(
    request: AnimateRequest,
    travel: TravelFrames,
    size: tuple[int, int],
    duration: float,
    sound: tracks.Soundtrack | None,
    styler: FrameStyler | None,
) -> dict[str, Any]:
    soundtrack = asdict(replace(request.soundtrack, compose=None))
    if request.soundtrack.compose is not None:
        soundtrack["compose"] = asdict(request.soundtrack.compose)
    return {
        "kind": "animate",
        "keyframes": [{"prompt": p, "seed": s} for p, s in zip(travel.prompts, travel.seeds, strict=True)],
        "negative_prompt": request.negative_prompt,
        "model": travel.model,
        "model_id": request.model_id,
        "sampler": "DDIM",
        "steps": request.steps,
        "guidance_scale": request.guidance_scale,
        "interpolation": request.interpolation,
        "frames": len(travel.outputs),
        "fps": request.fps,
        "size": list(size),
        "duration": round(duration, 3),
        "style": styler.params() if styler is not None else None,
        "smoothing": request.smoothing,
        "soundtrack": soundtrack
        | {"title": sound.title if sound else None, "record_id": sound.record_id if sound else None},
        "seconds_per_frame": round(travel.seconds_per_frame, 3),
        "cancelled": travel.cancelled,
    }


def _empty_result(request: AnimateRequest, travel: TravelFrames) -> AnimateResult:
    last = Image.fromarray(travel.outputs[-1]) if travel.outputs else None
    return AnimateResult(
        None, None, len(travel.outputs), float(request.fps), (0, 0), 0.0, travel.seeds, travel.model,
        travel.seconds_per_frame, None, last, travel.frames, travel.parameters, {}, cancelled=True,
    )  # fmt: skip
