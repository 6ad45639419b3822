"""A soundtrack under an animation: a Music result from History, an audio file, or one composed now.

Two ways to fit music and picture (the user's choice):
- "trim":   the video keeps its frame count; the music is cut to the video's length and faded out
            (a shorter piece leaves silence at the end, with a notice);
- "follow": the video's length follows the music: frames = duration x fps (within the frame limit).

The mux is one ffmpeg pass (imageio-ffmpeg's binary): the H.264 track is copied, the audio is
faded and encoded to AAC, and the index goes to the front (`+faststart`) so browsers start at once.
"""

from __future__ import annotations

import logging
import math
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.music import TEXT_TASK, ComposeRequest, MusicPipeline, MusicResult
from pipelines.video.probe import ffmpeg_exe
from studio.events import CancelToken, Finished, Notice, UserError
from studio.store import OutputStore, Record
from studio.worker import Emit

log = logging.getLogger(__name__)

MUSIC_TASKS = ("music", TEXT_TASK)  # History tasks whose rows carry a WAV
SOURCES = ("none", "history", "file", "compose")
FITS = ("trim", "follow")
AUDIO_SUFFIXES = {".wav", ".mp3", ".ogg", ".flac", ".m4a", ".aac", ".opus"}
MAX_FADE_S = 10.0


@dataclass(frozen=True)
class SoundtrackRequest:
    source: str = "none"  # none | history | file | compose
    record_id: int | None = None  # history: the Music result's History id
    audio_path: str | None = None  # file: any audio file (the Music tab's "Send to Video" gives its WAV)
    compose: ComposeRequest | None = field(default=None)  # compose: composed now with the Music pipeline
    fit: str = "trim"  # trim (music cut to the video) | follow (the video's length follows the music)
    fade_s: float = 1.0  # fade-out at the end of the video when the music is cut
    owner: str | None = None  # history: only this owner's results may be picked (None = anyone's, locally)


@dataclass(frozen=True)
class Soundtrack:
    path: Path  # the audio file muxed in
    duration: float  # seconds of audio
    title: str  # for History and the status line
    record_id: int | None = None  # the Music History row, when it came from there (or was composed)


def check(request: SoundtrackRequest) -> None:
    """UserError for a request that is wrong before anything runs."""
    if request.source not in SOURCES:
        raise UserError(f"Soundtrack source must be one of: {', '.join(SOURCES)}.")
    if request.fit not in FITS:
        raise UserError(
            f"Soundtrack fit must be 'trim' (music cut to the video) or 'follow' (got {request.fit!r})."
        )
    if not 0.0 <= float(request.fade_s) <= MAX_FADE_S:
        raise UserError(f"Fade-out must be between 0 and {MAX_FADE_S:g} s (got {request.fade_s}).")
    if request.source == "history" and request.record_id is None:
        raise UserError("Pick a Music result from History for the soundtrack (or choose another source).")
    if request.source == "file" and not request.audio_path:
        raise UserError("Give an audio file for the soundtrack (or choose another source).")


def music_history(store: OutputStore, limit: int = 50, owner: str | None = None) -> list[Record]:
    """Music results (composed or MusicGen) that still have their WAV, newest first; `owner` narrows."""
    rows = [r for task in MUSIC_TASKS for r in store.history(task, limit, owner) if _wav_of(r) is not None]
    return sorted(rows, key=lambda r: r.created, reverse=True)[:limit]


def history_label(record: Record) -> str:
    duration = record.params.get("duration_s")
    length = f" · {float(duration):.1f} s" if duration else ""
    return f"#{record.id} · {record.title[:60]}{length}"


def _wav_of(record: Record) -> Path | None:
    return next((f for f in record.files if f.suffix.lower() == ".wav" and f.exists()), None)


def resolve(
    request: SoundtrackRequest,
    store: OutputStore,
    music: MusicPipeline,
    cancel: CancelToken,
    emit: Emit,
) -> Soundtrack | None:
    """The soundtrack's file and length (composing it first when asked); None for no soundtrack."""
    check(request)
    if request.source == "none":
        return None
    if request.source == "history":
        record = store.get(int(request.record_id), owner=request.owner)
        wav = _wav_of(record) if record is not None and record.task in MUSIC_TASKS else None
        if wav is None:
            raise UserError(
                f"Music result #{request.record_id} was not found in History (or its WAV was deleted)."
            )
        return Soundtrack(wav, audio_duration(wav), record.title, record.id)
    if request.source == "file":
        path = Path(str(request.audio_path))
        if not path.is_file():
            raise UserError("The soundtrack file was not found; upload it again.")
        if path.stat().st_size == 0:
            raise UserError("The soundtrack file is empty (0 bytes).")
        # a Music result sent over from the Music tab keeps its title and History link
        record = next((r for r in music_history(store) if _wav_of(r) == path.resolve()), None)
        title, record_id = (record.title, record.id) if record is not None else (path.name, None)
        return Soundtrack(path, audio_duration(path), title, record_id)
    # compose in place: the Music pipeline saves and records the piece as the Music tab would
    emit(Notice("Composing the soundtrack first…", "info"))
    result: MusicResult | None = None
    for event in music.compose(request.compose or ComposeRequest(), cancel):
        if isinstance(event, Notice):
            emit(event)
        elif isinstance(event, Finished):
            result = event.result
    cancel.raise_if_cancelled()
    if result is None:
        raise UserError("The soundtrack could not be composed.")
    return Soundtrack(result.files.wav, float(result.audio.duration_s), result.title, result.record_id)


def audio_duration(path: Path) -> float:
    """Seconds of audio, or a UserError when the file is not audio ffmpeg can read."""
    import soundfile

    try:
        info = soundfile.info(str(path))
        if info.frames > 0 and info.samplerate > 0:
            return info.frames / info.samplerate
    except (RuntimeError, soundfile.LibsndfileError):
        log.debug("soundfile cannot read %s; asking ffmpeg", path)
    done = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:a:0", "-f", "null", "-"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    text = done.stderr.decode("utf-8", "replace")
    times = [part.split("time=")[1].split()[0] for part in text.split("\r") if "time=" in part]
    if done.returncode or not times or "Audio:" not in text:
        raise UserError(f"The soundtrack '{path.name}' could not be read as audio.")
    h, m, s = times[-1].split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def frames_for(
    soundtrack: Soundtrack, fps: float, max_frames: int, min_frames: int
) -> tuple[int, str | None]:
    """'follow': the frame count that covers the music, within the limits (with a notice if clamped)."""
    wanted = max(1, math.ceil(soundtrack.duration * fps - 1e-6))
    if wanted > max_frames:
        return max_frames, (
            f"The music runs {soundtrack.duration:.1f} s; at {fps:g} fps that is {wanted} frames, more than "
            f"the limit of {max_frames}. The video has {max_frames} frames and the music is cut and faded."
        )
    if wanted < min_frames:
        return (
            min_frames,
            f"The music is only {soundtrack.duration:.1f} s; the video keeps one frame per keyframe.",
        )
    return wanted, None


def mux(video: Path, soundtrack: Soundtrack, out: Path, video_duration: float, fade_s: float) -> str | None:
    """`out` = video's H.264 (copied) + the soundtrack cut to the video and faded, as AAC. A notice or None."""
    fade = min(float(fade_s), video_duration / 2)
    filters = ["afade=t=in:d=0.02"]  # no click at the first sample
    notice = None
    if soundtrack.duration > video_duration + 1e-3 and fade > 0:
        filters.append(f"afade=t=out:st={video_duration - fade:.3f}:d={fade:.3f}")
    elif soundtrack.duration + 0.05 < video_duration:
        notice = (
            f"The music ({soundtrack.duration:.1f} s) is shorter than the video ({video_duration:.1f} s); "
            "the end of the video is silent."
        )
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-i", str(video), "-i", str(soundtrack.path),
        "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
        "-af", ",".join(filters), "-c:a", "aac", "-b:a", "160k",
        "-t", f"{video_duration:.3f}", "-movflags", "+faststart", str(out),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, timeout=600, check=False)
    if done.returncode:
        log.warning("soundtrack mux failed: %s", done.stderr.decode(errors="replace")[-400:])
        raise UserError(f"The soundtrack '{soundtrack.path.name}' could not be put under the video.")
    return notice


def iter_history_choices(
    store: OutputStore, limit: int = 50, owner: str | None = None
) -> Iterator[tuple[str, int]]:
    """(label, record id) for a dropdown of Music results."""
    for record in music_history(store, limit, owner):
        yield history_label(record), record.id
