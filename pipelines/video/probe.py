"""Know a clip before decoding it: sniff the bytes, then ask imageio-ffmpeg's bundled ffmpeg.

Nothing here trusts the file name. The first bytes say what the file really is (an MP4, a WebM, a
PNG, a WAV, ...); a zero-byte file, a file whose content is not a video (whatever its extension
says) and a file ffmpeg cannot open are refused with a `UserError` a person understands. What
ffmpeg prints for `ffmpeg -i clip` is parsed for duration, frame rate, size, rotation, audio, and
whether the frame rate is variable (ffmpeg's average fps differs from its base rate `tbr`).
"""

from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from studio.events import UserError

log = logging.getLogger(__name__)

# what the first bytes of a file say it is (offset, magic, kind, is_video)
_SIGNATURES: tuple[tuple[int, bytes, str, bool], ...] = (
    (4, b"ftyp", "an MP4/MOV video", True),
    (0, b"\x1a\x45\xdf\xa3", "a WebM/Matroska video", True),
    (0, b"OggS", "an Ogg file", True),  # Ogg may hold Theora video; ffmpeg decides below
    (0, b"FLV", "an FLV video", True),
    (0, b"\x00\x00\x01\xba", "an MPEG video", True),
    (0, b"\x30\x26\xb2\x75", "a WMV/ASF video", True),
    (0, b"GIF8", "a GIF animation", True),
    (0, b"\x89PNG", "a PNG image", False),
    (0, b"\xff\xd8\xff", "a JPEG image", False),
    (0, b"BM", "a BMP image", False),
    (0, b"%PDF", "a PDF document", False),
    (0, b"PK\x03\x04", "a ZIP archive", False),
    (0, b"ID3", "an MP3 audio file", False),
    (0, b"fLaC", "a FLAC audio file", False),
    (0, b"\xff\xfb", "an MP3 audio file", False),
)
_RIFF_KINDS = {
    b"AVI ": ("an AVI video", True),
    b"WAVE": ("a WAV audio file", False),
    b"WEBP": ("a WebP image", False),
}
VIDEO_SUFFIXES = {
    ".mp4",
    ".m4v",
    ".mov",
    ".webm",
    ".mkv",
    ".avi",
    ".ogv",
    ".ogg",
    ".flv",
    ".mpg",
    ".mpeg",
    ".ts",
    ".wmv",
    ".gif",
    ".3gp",
}
STILL_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe"}


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int  # as displayed (after the rotation flag is applied, which ffmpeg does when decoding)
    height: int
    fps: float  # average frame rate
    duration: float  # seconds
    rotation: int  # display rotation in degrees (0, 90, 180, 270)
    has_audio: bool
    audio_codec: str | None
    video_codec: str
    container: str  # ffmpeg's demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    variable_fps: bool  # the frame rate changes within the clip (phones do this)
    kind: str  # what the bytes say, e.g. "an MP4/MOV video"

    @property
    def frames(self) -> int:
        """Estimated frame count at the average rate."""
        return max(1, round(self.duration * self.fps))


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def sniff(path: Path) -> tuple[str, bool | None]:
    """(what the content is, whether it can be a video; None when the bytes are not recognised)."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head[:4] == b"RIFF" and head[8:12] in _RIFF_KINDS:
        return _RIFF_KINDS[head[8:12]]
    if len(head) >= 1 and head[0] == 0x47 and _looks_like_ts(path):
        return "an MPEG-TS video", True
    for offset, magic, kind, is_video in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return kind, is_video
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "a text file", False
    return "an unknown file", None


def _looks_like_ts(path: Path) -> bool:
    with open(path, "rb") as handle:
        data = handle.read(188 * 3 + 1)
    return len(data) > 188 * 2 and data[0] == data[188] == data[376] == 0x47


def probe(source: Any) -> VideoInfo:
    """Path (or an upload object with `.name`/`.path`) -> VideoInfo, or a UserError that says why not."""
    path = _as_path(source)
    if not path.exists():
        raise UserError("The video file was not found; upload it again.")
    if path.stat().st_size == 0:
        raise UserError("The video file is empty (0 bytes); the upload may have failed. Upload it again.")
    kind, is_video = sniff(path)
    suffix = path.suffix.lower()
    if is_video is False:
        lie = f", although its name ends in {suffix}" if suffix in VIDEO_SUFFIXES else ""
        raise UserError(
            f"This file is {kind}, not a video{lie}. Upload a video clip (MP4, MOV, WebM, MKV or AVI)."
        )
    text = _ffmpeg_header(path)
    info = parse_header(text, path, kind)
    audio_only = _AUDIO.search(text)
    if info is None and audio_only is not None:
        raise UserError(
            f"This file holds only sound ({audio_only.group(1)}), no picture. Upload a video clip; "
            "to put music under a video, use the soundtrack option of Animate."
        )
    if info is None:
        detail = _last_error_line(text, path)
        what = "" if is_video else f" It looks like {kind}."
        raise UserError(
            f"This file could not be read as a video ({detail}).{what} It may be damaged or incomplete; "
            "upload an MP4, MOV, WebM, MKV or AVI clip."
        )
    if info.container in STILL_FORMATS:
        raise UserError("This file is a still image, not a video. Upload a video clip.")
    if info.duration <= 0 or info.fps <= 0:
        info = _measured(info)
    return info


def _measured(info: VideoInfo) -> VideoInfo:
    """Duration and rate when the header lacks them (a browser's MediaRecorder WebM says 'Duration:
    N/A'): count the video packets with a stream copy, which reads the file but decodes nothing."""
    try:
        done = subprocess.run(
            [
                ffmpeg_exe(),
                "-hide_banner",
                "-nostdin",
                "-i",
                str(info.path),
                "-map",
                "0:v:0",
                "-c",
                "copy",
                "-f",
                "null",
                "-",
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise UserError("Measuring this clip took too long; it may be damaged.") from None
    text = done.stderr.decode("utf-8", "replace")
    frames = [int(n) for n in re.findall(r"frame=\s*(\d+)", text)]
    times = re.findall(r"time=(\d+):(\d\d):(\d\d(?:\.\d+)?)", text)
    if not frames or frames[-1] < 2 or not times:
        raise UserError("This file has no moving picture (fewer than two frames). Upload a video clip.")
    count = frames[-1]
    h, m, sec = times[-1]
    last = int(h) * 3600 + int(m) * 60 + float(sec)  # time of the last frame
    fps = info.fps or ((count - 1) / last if last > 0 else 25.0)
    duration = info.duration or count / fps
    log.info("%s: no duration in the header; measured %d frames, %.3f s", info.path.name, count, duration)
    return replace(info, fps=fps, duration=duration)


def _as_path(source: Any) -> Path:
    if isinstance(source, (str, Path)):
        return Path(source)
    for attr in ("path", "name"):
        value = getattr(source, attr, None)
        if isinstance(value, (str, Path)):
            return Path(value)
    if isinstance(source, dict) and "path" in source:
        return Path(source["path"])
    raise UserError("No video was given. Upload a clip first.")


def _ffmpeg_header(path: Path) -> str:
    """What `ffmpeg -i` prints about the input (it exits 1 because no output is named)."""
    try:
        done = subprocess.run(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise UserError("Reading this file took too long; it may be damaged.") from None
    return done.stderr.decode("utf-8", "replace")


def _last_error_line(text: str, path: Path) -> str:
    """ffmpeg's own reason, without the file path (e.g. 'moov atom not found')."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if "At least one output file" not in line]
    if not lines:
        return "ffmpeg gave no reason"
    return lines[-1].replace(f"{path}: ", "").replace("[in#0 @ ", "[").strip()


_INPUT = re.compile(r"^Input #0, ([^,]+(?:,[^ ]+)*), from", re.M)
_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_VIDEO = re.compile(r"^\s*Stream #0:\d+.*?: Video: (.*)$", re.M)
_AUDIO = re.compile(r"^\s*Stream #0:\d+.*?: Audio: (\w+)", re.M)
_SIZE = re.compile(r"(?:,|\s)(\d{2,5})x(\d{2,5})(?:[ ,\[]|$)")
_FPS = re.compile(r"([\d.]+)(k?) fps")
_TBR = re.compile(r"([\d.]+)(k?) tbr")
_ROTATION = re.compile(r"rotation of (-?[\d.]+) degrees")
_ROTATE_TAG = re.compile(r"rotate\s+:\s(-?\d+)")


def _rate(match: re.Match[str] | None) -> float:
    if match is None:
        return 0.0
    return float(match.group(1)) * (1000 if match.group(2) else 1)


def parse_header(text: str, path: Path, kind: str = "") -> VideoInfo | None:
    """Parse `ffmpeg -i` output; None when there is no readable video stream."""
    container = _INPUT.search(text)
    # cover art in an audio file is listed as a video stream "(attached pic)": not a video
    video = next((m for m in _VIDEO.finditer(text) if "(attached pic)" not in m.group(1)), None)
    if container is None or video is None:
        return None
    line = video.group(1)
    size = _SIZE.search(line)
    if size is None:
        return None
    width, height = int(size.group(1)), int(size.group(2))
    duration = 0.0
    if match := _DURATION.search(text):
        duration = int(match.group(1)) * 3600 + int(match.group(2)) * 60 + float(match.group(3))
    fps, tbr = _rate(_FPS.search(line)), _rate(_TBR.search(line))
    fps = fps or tbr
    rotation = 0
    if match := _ROTATION.search(text):
        rotation = round(float(match.group(1))) % 360
    elif match := _ROTATE_TAG.search(text):
        rotation = int(match.group(1)) % 360
    if rotation in (90, 270):
        width, height = height, width  # ffmpeg's autorotate hands us upright frames
    audio = _AUDIO.search(text)
    # ffmpeg's base rate (tbr) is the rate that every timestamp fits; the average differs when frames
    # are spaced unevenly, i.e. the clip has a variable frame rate
    variable = bool(fps and tbr and abs(fps - tbr) / tbr > 0.02)
    return VideoInfo(
        path=path,
        width=width,
        height=height,
        fps=fps,
        duration=duration,
        rotation=rotation,
        has_audio=audio is not None,
        audio_codec=audio.group(1) if audio else None,
        video_codec=line.split(" ", 1)[0].strip(","),
        container=container.group(1),
        variable_fps=variable,
        kind=kind,
    )
