"""Probe, streamed reading and MP4 writing on tiny clips made with the bundled ffmpeg."""

from __future__ import annotations

import inspect
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from pipelines.video.io import VideoLimits, finish_mp4, iter_frames, plan_read, write_mp4
from pipelines.video.probe import probe
from studio.events import UserError
from tests.pipelines.video.clips import count_frames, ffmpeg, make_clip, stream_durations


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("io") / "clip.mp4", (96, 64), fps=12, seconds=2.0)


def test_probe_reads_size_rate_duration_and_audio(clip: Path) -> None:
    info = probe(clip)
    assert (info.width, info.height) == (96, 64)
    assert info.fps == pytest.approx(12)
    assert info.duration == pytest.approx(2.0, abs=0.05)
    assert info.has_audio and info.audio_codec == "aac"
    assert not info.variable_fps and info.rotation == 0
    assert info.frames == 24


def test_upload_object_with_a_path_is_accepted(clip: Path) -> None:
    class Upload:
        path = str(clip)

    assert probe(Upload()).width == 96


def test_zero_byte_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        probe(empty)


@pytest.mark.parametrize(
    ("name", "make", "expected"),
    [
        (
            "notes.mp4",
            lambda p: p.write_text("hello, this is not a video\n"),
            "a text file, not a video, although its name ends in .mp4",
        ),
        (
            "sound.mp4",
            lambda p: ffmpeg("-f", "lavfi", "-i", "sine=duration=0.5", "-f", "wav", str(p)),
            "a WAV audio file",
        ),
        (
            "picture.mov",
            lambda p: ffmpeg(
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=32x32",
                "-frames:v",
                "1",
                "-f",
                "image2",
                "-c:v",
                "png",
                str(p),
            ),
            "a PNG image",
        ),
    ],
)
def test_files_whose_extension_lies_are_refused(tmp_path: Path, name: str, make, expected: str) -> None:
    path = tmp_path / name
    make(path)
    with pytest.raises(UserError, match=expected):
        probe(path)


def test_a_real_video_with_a_wrong_extension_is_read_by_its_content(clip: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "clip.txt"
    renamed.write_bytes(clip.read_bytes())
    info = probe(renamed)
    assert info.kind == "an MP4/MOV video" and info.width == 96


def test_truncated_and_random_files_are_refused(clip: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(clip.read_bytes()[:2000])  # the index (moov) is at the end: now missing
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    for path in (truncated, noise):
        with pytest.raises(UserError, match="could not be read as a video"):
            probe(path)


def test_a_still_image_is_not_a_video(tmp_path: Path) -> None:
    still = tmp_path / "still.png"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=32x32", "-frames:v", "1", str(still))
    with pytest.raises(UserError, match="not a video"):
        probe(still)


def test_frames_stream_at_the_planned_size_and_count(clip: Path) -> None:
    info = probe(clip)
    plan = plan_read(info)
    frames = iter_frames(info, plan)
    assert inspect.isgenerator(frames)  # nothing is decoded until asked
    first = next(frames)
    assert first.shape == (64, 96, 3) and first.dtype == np.uint8
    assert 1 + sum(1 for _ in frames) == plan.frames == 24


def test_trim_start_and_end(clip: Path) -> None:
    info = probe(clip)
    plan = plan_read(info, start=0.5, end=1.5)
    assert plan.frames == 12
    trimmed = list(iter_frames(info, plan))
    whole = list(iter_frames(info, plan_read(info)))
    assert len(trimmed) == 12
    # the seek is frame-exact: the trimmed clip is frames 6..17 of the whole one
    for got, want in zip(trimmed, whole[6:18], strict=True):
        assert np.abs(got.astype(int) - want).mean() < 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": 5.0}, "past the end"),
        ({"start": 1.0, "end": 0.5}, "must come after start"),
        ({"start": -1.0}, "negative"),
        ({"size": 5000}, "Output size"),
        ({"fps": 240}, "Frame rate"),
    ],
)
def test_impossible_requests_are_refused(clip: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        plan_read(probe(clip), **kwargs)


def test_a_4k_clip_is_downscaled_by_ffmpeg_never_read_whole(tmp_path: Path) -> None:
    import tracemalloc

    big = make_clip(tmp_path / "uhd.mp4", (3840, 2160), fps=5, seconds=0.6, audio=None)
    info = probe(big)
    assert (info.width, info.height) == (3840, 2160)
    plan = plan_read(info)
    assert (plan.width, plan.height) == (1280, 720)
    assert any("3,840×2,160" in n and "1,280 px" in n for n in plan.notices)
    # ffmpeg scales inside its own process: Python only ever holds 1280x720 frames (2.8 MB each),
    # never a 4K one (25 MB), let alone the clip
    tracemalloc.start()
    try:
        shapes = {frame.shape for frame in iter_frames(info, plan)}
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert shapes == {(720, 1280, 3)}
    assert peak < 12_000_000


def test_a_ten_minute_clip_is_trimmed_to_the_limit_with_a_notice(tmp_path: Path) -> None:
    long_clip = make_clip(tmp_path / "long.mp4", (32, 32), fps=1, seconds=600, audio=None)
    info = probe(long_clip)
    assert info.duration == pytest.approx(600, abs=1)
    plan = plan_read(info)
    assert plan.end - plan.start == pytest.approx(60.0)
    assert any("only the first 60 s" in n for n in plan.notices)
    assert sum(1 for _ in iter_frames(info, plan)) == 60
    # a smaller configured limit, and another part of the clip chosen with start
    later = plan_read(info, start=300, limits=VideoLimits(max_seconds=5))
    assert (later.start, later.end) == (300, 305) and sum(1 for _ in iter_frames(info, later)) == 5


def test_variable_frame_rate_becomes_constant(tmp_path: Path) -> None:
    # 15 frames 1/30 s apart, then 15 frames 1/15 s apart, timestamps kept as they are
    vfr = make_clip(
        tmp_path / "vfr.mp4",
        (64, 48),
        fps=30,
        seconds=1.0,
        audio=None,
        video_filter="setpts='(N/30+if(gte(N,15),(N-15)/30,0))/TB'",
        extra=("-fps_mode", "passthrough"),
    )
    info = probe(vfr)
    assert info.variable_fps
    plan = plan_read(info)
    assert any("variable frame rate" in n for n in plan.notices)
    out = tmp_path / "cfr.mp4"
    frames = list(iter_frames(info, plan))
    assert len(frames) == plan.frames
    write_mp4(frames, out, plan.fps)
    written = probe(out)
    assert not written.variable_fps
    assert written.duration == pytest.approx(info.duration, abs=1.5 / plan.fps)


def test_odd_portrait_clip_is_cropped_to_even_sizes(tmp_path: Path) -> None:
    odd = make_clip(tmp_path / "odd.mp4", (66, 98), audio=None, video_filter="scale=65:97", pix_fmt="yuv444p")
    info = probe(odd)
    plan = plan_read(info)
    assert (plan.width, plan.height) == (64, 96)
    assert any("cropped by 1 px at the right and bottom edge" in n for n in plan.notices)
    assert next(iter_frames(info, plan)).shape == (96, 64, 3)


def test_rotated_phone_clip_comes_out_upright(clip: Path, tmp_path: Path) -> None:
    rotated = tmp_path / "rotated.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(clip), "-c", "copy", str(rotated))
    info = probe(rotated)
    assert info.rotation == 90 and (info.width, info.height) == (64, 96)
    assert next(iter_frames(info, plan_read(info))).shape == (96, 64, 3)


def test_mp4_keeps_the_audio_copied_and_trimmed(clip: Path, tmp_path: Path) -> None:
    info = probe(clip)
    plan = plan_read(info, start=0.5, end=1.5)
    out = tmp_path / "out.mp4"
    count, notice = write_mp4(iter_frames(info, plan), out, plan.fps, clip, info.audio_codec, 0.5, 1.0)
    assert count == 12 and notice is None
    written = probe(out)
    assert written.has_audio and written.audio_codec == "aac" and written.video_codec == "h264"
    lengths = stream_durations(out)
    assert lengths["v"] == pytest.approx(1.0, abs=1 / 12)
    assert lengths["a"] == pytest.approx(1.0, abs=1 / 12)
    assert count_frames(out) == 12
    data = out.read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat")  # faststart: the index comes before the media


def test_audio_that_mp4_cannot_take_is_reencoded_with_a_notice(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "pcm.mov", (64, 48), seconds=1.0, audio="pcm_s16le")
    info = probe(source)
    assert info.audio_codec == "pcm_s16le"
    plan = plan_read(info)
    video = tmp_path / "video.mp4"
    write_mp4(iter_frames(info, plan), video, plan.fps)
    out = tmp_path / "out.mp4"
    notice = finish_mp4(video, out, source, info.audio_codec, 0.0, plan.duration)
    assert notice is not None and "re-encoded to AAC" in notice
    assert probe(out).audio_codec == "aac"


def test_sound_only_mp4s_are_refused_even_with_cover_art(tmp_path: Path) -> None:
    song = tmp_path / "song.mp4"  # an MP4 container (ftyp) holding only AAC
    ffmpeg("-f", "lavfi", "-i", "sine=duration=0.5", "-c:a", "aac", str(song))
    cover = tmp_path / "cover.png"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=32x32", "-frames:v", "1", str(cover))
    with_art = tmp_path / "with_art.mp4"  # the cover is listed as a video stream "(attached pic)"
    ffmpeg(
        "-i",
        str(song),
        "-i",
        str(cover),
        "-map",
        "0",
        "-map",
        "1",
        "-c:a",
        "copy",
        "-c:v",
        "png",
        "-disposition:v",
        "attached_pic",
        str(with_art),
    )
    for path in (song, with_art):
        with pytest.raises(UserError, match="only sound"):
            probe(path)


def test_a_webm_without_duration_is_measured(tmp_path: Path) -> None:
    # what a browser's MediaRecorder gives: WebM written to a pipe, "Duration: N/A" in the header
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    sources = [
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=96x64:rate=24:duration=2",
        "-f",
        "lavfi",
        "-i",
        "sine=duration=2",
    ]
    codecs = ["-c:v", "libvpx", "-deadline", "realtime", "-c:a", "libopus", "-f", "webm", "pipe:1"]
    live = tmp_path / "live.webm"
    live.write_bytes(
        subprocess.run([exe, "-loglevel", "error", *sources, *codecs], capture_output=True, check=True).stdout
    )
    header = subprocess.run([exe, "-hide_banner", "-i", str(live)], capture_output=True, check=False).stderr
    assert b"Duration: N/A" in header
    info = probe(live)
    assert info.duration == pytest.approx(2.0, abs=0.05) and info.fps == pytest.approx(24)
    assert info.has_audio and info.audio_codec == "opus"
    assert sum(1 for _ in iter_frames(info, plan_read(info))) == 48
