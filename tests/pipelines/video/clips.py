"""Tiny test clips made with imageio-ffmpeg's own ffmpeg (lavfi test sources, a sine audio track)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from pipelines.video.io import Mp4Writer

SAMPLE = Path(__file__).resolve().parents[3] / "assets" / "styles" / "sample.jpg"


def ffmpeg(*args: str) -> str:
    import imageio_ffmpeg

    done = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", *args],
        capture_output=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(done.stderr.decode(errors="replace")[-800:])
    return done.stderr.decode(errors="replace")


def make_clip(
    path: Path,
    size: tuple[int, int] = (96, 64),
    fps: float = 12,
    seconds: float = 2.0,
    audio: str | None = "aac",
    video_filter: str = "",
    pix_fmt: str = "yuv420p",
    extra: tuple[str, ...] = (),
    codec: str = "libx264",
) -> Path:
    """testsrc2 video (+ a 440 Hz sine track encoded with `audio`, or none)."""
    w, h = size
    args = ["-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate={fps}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}"]
    if video_filter:
        args += ["-vf", video_filter]
    speed = ["-preset", "ultrafast"] if codec == "libx264" else ["-deadline", "realtime"]
    args += ["-c:v", codec, *speed, "-pix_fmt", pix_fmt, *extra]
    if audio:
        args += ["-c:a", audio]
    ffmpeg(*args, str(path))
    return path


def moving_frames(n: int = 16, side: int = 128) -> list[np.ndarray]:
    """A photo texture translating and rotating a little every frame (known smooth motion)."""
    big = side * 3 // 2
    photo = np.asarray(Image.open(SAMPLE).convert("RGB").resize((big, big), Image.LANCZOS))
    frames = []
    for t in range(n):
        matrix = cv2.getRotationMatrix2D((big / 2, big / 2), 0.5 * t, 1.0)
        matrix[0, 2] += 1.5 * t
        matrix[1, 2] += 0.75 * t
        moved = cv2.warpAffine(
            photo, matrix, (big, big), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        o = (big - side) // 2
        frames.append(np.ascontiguousarray(moved[o : o + side, o : o + side]))
    return frames


def write_frames_clip(path: Path, frames: list[np.ndarray], fps: float = 12) -> Path:
    """Near-lossless H.264 of the given frames (crf 12)."""
    h, w = frames[0].shape[:2]
    with Mp4Writer(path, w, h, fps, crf=12) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def stream_durations(path: Path) -> dict[str, float]:
    """Decoded length in seconds of the video and audio streams (ffmpeg decodes to null)."""
    out = {}
    for kind in ("v", "a"):
        try:
            text = ffmpeg("-i", str(path), "-map", f"0:{kind}:0", "-f", "null", "-")
        except RuntimeError:
            continue
        times = re.findall(r"time=(\d+):(\d+):([\d.]+)", text)
        if times:
            hh, mm, ss = times[-1]
            out[kind] = int(hh) * 3600 + int(mm) * 60 + float(ss)
    return out


def count_frames(path: Path) -> int:
    import imageio_ffmpeg

    return imageio_ffmpeg.count_frames_and_secs(str(path))[0]
