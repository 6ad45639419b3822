"""Read a clip frame by frame and write a browser-playable MP4, through imageio-ffmpeg's ffmpeg.

Reading never holds the whole clip: ffmpeg decodes, trims (`-ss`/`-t`), converts to a constant frame
rate (`fps` filter, so variable-rate phone clips come out evenly spaced), scales and crops to an even
size inside its own process, and pipes one RGB frame at a time (`imageio_ffmpeg.read_frames`).
A 4K or 10-minute upload therefore costs one small frame of memory at a time.

Writing: frames go to H.264 yuv420p (what every browser plays; cv2's mp4v does not) with
`write_frames`; then one short ffmpeg pass puts the source's audio under it, trimmed to the same
start/end, copied as is (`-c:a copy`) when MP4 and browsers take the codec, else re-encoded to AAC,
and moves the index to the front (`-movflags +faststart`) so playback starts before the download ends.
"""

from __future__ import annotations

import logging
import math
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.video.probe import VideoInfo, ffmpeg_exe
from studio.events import UserError

log = logging.getLogger(__name__)


class _QuietSizeNotes(logging.Filter):
    """imageio-ffmpeg warns whenever the frames it returns are not the source size; here that is
    always intended (our own scale/crop filters), so the warning is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is different from the source frame size" not in record.getMessage()


logging.getLogger("imageio_ffmpeg").addFilter(_QuietSizeNotes())

COPY_AUDIO_CODECS = {"aac", "mp3", "opus", "alac", "flac"}  # MP4 holds them and Chromium plays them
CRF = 20  # x264 quality: 18 is visually lossless, 23 is ffmpeg's default
# yuv420p -> RGB with interpolated chroma, as browsers show it: ffmpeg's default fast path repeats each
# chroma sample over 2x2 pixels, blocky colour edges that shift with motion (measured: +35% flicker)
DECODE_SWS_FLAGS = "bilinear+accurate_rnd+full_chroma_int+full_chroma_inp"


@dataclass(frozen=True)
class VideoLimits:
    """What one stylize job processes at most; the page states these."""

    max_side: int = 1280  # px on the long side of the output
    max_seconds: float = 60.0  # of the clip, after the start/end trim
    max_fps: float = 30.0
    min_side: int = 16


DEFAULT_LIMITS = VideoLimits()


@dataclass(frozen=True)
class ReadPlan:
    """What will be decoded: the trim, the constant frame rate and the output size."""

    start: float  # seconds into the clip
    end: float
    fps: float
    width: int  # output size (even: H.264 yuv420p needs it)
    height: int
    scaled: tuple[int, int]  # size after scaling, before the even crop
    notices: tuple[str, ...] = ()

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def frames(self) -> int:
        """Frames the constant-rate conversion yields (ffmpeg's fps filter rounds to the nearest)."""
        return max(1, math.floor(self.duration * self.fps + 0.5))


def plan_read(
    info: VideoInfo,
    size: int = 0,
    fps: float = 0.0,
    start: float = 0.0,
    end: float | None = None,
    limits: VideoLimits = DEFAULT_LIMITS,
) -> ReadPlan:
    """Settle trim, frame rate and size; UserError for what cannot be fixed, notices for what was."""
    notices: list[str] = []
    # 1. trim
    start, end = float(start or 0.0), float(end) if end else 0.0
    if start < 0 or (end and end < 0):
        raise UserError("Start and end times cannot be negative.")
    if info.duration > 0 and start >= info.duration:
        raise UserError(f"Start ({start:g} s) is past the end of the clip ({info.duration:.2f} s).")
    if end and end <= start:
        raise UserError(f"End ({end:g} s) must come after start ({start:g} s).")
    clip_end = info.duration if info.duration > 0 else start + limits.max_seconds
    end = min(end, clip_end) if end else clip_end
    if end - start > limits.max_seconds:
        notices.append(
            f"The clip runs {end - start:.1f} s from the start point; only the first "
            f"{limits.max_seconds:g} s are processed (the limit per job). Set start/end to choose another part."
        )
        end = start + limits.max_seconds
    # 2. frame rate: constant, at most the limit
    if fps and not 1 <= fps <= limits.max_fps:
        raise UserError(f"Frame rate must be between 1 and {limits.max_fps:g} fps (got {fps:g}).")
    source_fps = info.fps or 25.0
    if not fps:
        fps = min(source_fps, limits.max_fps)
        if source_fps > limits.max_fps:
            notices.append(f"The clip has {source_fps:g} fps; it is processed at {fps:g} fps (the limit).")
    if info.variable_fps:
        notices.append(
            f"The clip has a variable frame rate (about {source_fps:g} fps on average); it was converted "
            f"to a constant {fps:g} fps."
        )
    # 3. size: the requested long side, or the clip's own up to the limit
    if size and not limits.min_side <= size <= limits.max_side:
        raise UserError(
            f"Output size must be between {limits.min_side} and {limits.max_side:,} px on the long side "
            f"(got {int(size):,})."
        )
    long_side = max(info.width, info.height)
    target = int(size) if size else min(long_side, limits.max_side)
    if not size and long_side > limits.max_side:
        notices.append(
            f"The clip is {info.width:,}×{info.height:,} px; it is processed at {limits.max_side:,} px on the "
            "long side (the limit per job)."
        )
    scale = target / long_side
    sw, sh = max(2, round(info.width * scale)), max(2, round(info.height * scale))
    width, height = sw - sw % 2, sh - sh % 2
    if (width, height) != (sw, sh):
        edges = " and ".join(e for e, odd in (("right", sw % 2), ("bottom", sh % 2)) if odd)
        notices.append(
            f"H.264 needs an even width and height; the {sw}×{sh} frames were cropped by 1 px at the "
            f"{edges} edge to {width}×{height}."
        )
    return ReadPlan(start, end, float(fps), width, height, (sw, sh), tuple(notices))


def _filters(plan: ReadPlan, info: VideoInfo) -> str:
    chain = [f"fps={plan.fps:.6g}"]
    if plan.scaled != (info.width, info.height):
        shrink = plan.scaled[0] < info.width
        chain.append(f"scale={plan.scaled[0]}:{plan.scaled[1]}:flags={'area' if shrink else 'bicubic'}")
    if (plan.width, plan.height) != plan.scaled:
        chain.append(f"crop={plan.width}:{plan.height}:0:0")
    return ",".join(chain)


def iter_frames(info: VideoInfo, plan: ReadPlan) -> Iterator[np.ndarray]:
    """Yield HxWx3 uint8 RGB frames of the plan, one at a time (ffmpeg does trim/fps/scale/crop)."""
    import imageio_ffmpeg

    input_params = ["-nostdin"] + (["-ss", f"{plan.start:.6f}"] if plan.start > 0 else [])
    output_params = ["-t", f"{plan.duration:.6f}", "-vf", _filters(plan, info), "-an", "-sn"]
    output_params += ["-sws_flags", DECODE_SWS_FLAGS]
    reader = imageio_ffmpeg.read_frames(
        str(info.path), input_params=input_params, output_params=output_params
    )
    count = 0
    try:
        meta = next(reader)
        if tuple(meta["size"]) != (plan.width, plan.height):
            raise UserError(f"The clip decoded at an unexpected size {meta['size']}; it may be damaged.")
        for buffer in reader:
            count += 1
            yield np.frombuffer(buffer, dtype=np.uint8).reshape(plan.height, plan.width, 3)
    except (OSError, RuntimeError, StopIteration) as error:
        log.warning("decoding %s failed after %d frames: %s", info.path, count, error)
        raise UserError(
            f"The clip could not be decoded{f' after frame {count}' if count else ''}; the file may be "
            "damaged or incomplete."
        ) from None
    finally:
        reader.close()  # stops ffmpeg when the consumer stops early (cancel)
    if count == 0:
        raise UserError("No frames could be decoded from this clip in the chosen time range.")


class Mp4Writer:
    """Stream RGB frames into an H.264 yuv420p MP4 (video only; `finish_mp4` adds audio)."""

    def __init__(self, path: Path, width: int, height: int, fps: float, crf: int = CRF) -> None:
        import imageio_ffmpeg

        if width % 2 or height % 2:
            raise ValueError(f"H.264 yuv420p needs even sizes, got {width}x{height}")
        self.path, self.size, self.frames = Path(path), (width, height), 0
        self._gen = imageio_ffmpeg.write_frames(
            str(self.path),
            (width, height),
            fps=fps,
            codec="libx264",
            pix_fmt_out="yuv420p",
            quality=None,
            macro_block_size=2,
            ffmpeg_log_level="error",
            output_params=["-crf", str(crf), "-preset", "veryfast", "-movflags", "+faststart"],
        )
        self._gen.send(None)

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != (self.size[1], self.size[0], 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"expected {self.size[1]}x{self.size[0]}x3 uint8, got {frame.shape} {frame.dtype}"
            )
        self._gen.send(np.ascontiguousarray(frame))
        self.frames += 1

    def close(self) -> None:
        self._gen.close()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _run_ffmpeg(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    return subprocess.run(cmd, capture_output=True, check=False, timeout=600)


def finish_mp4(
    video: Path,
    out: Path,
    audio: Path | None = None,
    audio_codec: str | None = None,
    start: float = 0.0,
    duration: float | None = None,
) -> str | None:
    """Write `out` = the H.264 track of `video` + the first audio stream of `audio` (from `start`, for
    `duration` s), faststart. Audio is copied when MP4 and browsers take it, else re-encoded to AAC.
    Returns a notice for the user when the audio had to be re-encoded or dropped, else None."""
    base = ["-i", str(video)]
    if audio is None:
        done = _run_ffmpeg([*base, "-map", "0:v:0", "-c", "copy", "-movflags", "+faststart", str(out)])
        if done.returncode:
            raise RuntimeError(
                f"ffmpeg could not write the MP4: {done.stderr.decode(errors='replace')[-400:]}"
            )
        return None
    trim = (["-ss", f"{start:.6f}"] if start > 0 else []) + (["-t", f"{duration:.6f}"] if duration else [])
    mux = [*base, *trim, "-i", str(audio), "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy"]
    tail = ["-movflags", "+faststart", str(out)]
    if (audio_codec or "").lower() in COPY_AUDIO_CODECS:
        done = _run_ffmpeg([*mux, "-c:a", "copy", *tail])
        if done.returncode == 0:
            return None
        log.info("audio copy failed (%s); re-encoding to AAC", done.stderr.decode(errors="replace")[-300:])
    done = _run_ffmpeg([*mux, "-c:a", "aac", "-b:a", "160k", *tail])
    if done.returncode == 0:
        return f"The audio ({audio_codec or 'unknown codec'}) cannot be copied into an MP4 as is; it was re-encoded to AAC."
    log.warning("audio mux failed: %s", done.stderr.decode(errors="replace")[-400:])
    finish_mp4(video, out)
    return "The audio track could not be read, so the video has no sound."


def write_mp4(
    frames: Iterable[np.ndarray],
    out: Path,
    fps: float,
    audio: Path | None = None,
    audio_codec: str | None = None,
    audio_start: float = 0.0,
    audio_duration: float | None = None,
) -> tuple[int, str | None]:
    """Frames (HxWx3 uint8, even sizes) -> `out` MP4 with optional audio; (frame count, notice or None).
    For callers that already hold their frames (animation); stylize streams through Mp4Writer itself."""
    scratch = Path(tempfile.mkdtemp(prefix="studio-video-"))
    writer: Mp4Writer | None = None
    try:
        for frame in frames:
            if writer is None:
                writer = Mp4Writer(scratch / "video.mp4", frame.shape[1], frame.shape[0], fps)
            writer.write(frame)
        if writer is None:
            raise ValueError("no frames to write")
        writer.close()
        notice = finish_mp4(writer.path, out, audio, audio_codec, audio_start, audio_duration)
        return writer.frames, notice
    finally:
        if writer is not None:
            writer.close()  # idempotent; stops ffmpeg if a frame failed
        shutil.rmtree(scratch, ignore_errors=True)
