"""gradio_client against the launched app: the Video tab's three sections, bad input, History."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from imageio_ffmpeg import count_frames_and_secs, get_ffmpeg_exe

STYLE = [
    "filter",
    0,
    "",
    None,
    "cartoon",
    0.5,
    1.0,
    False,
]  # mode, style, blend, image, filter, amount, strength, preserve


def video_path(value) -> str:
    return value["video"] if isinstance(value, dict) else value


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    """1 s of a moving test pattern at 8 fps, 64x48, with a sine tone: made by the bundled ffmpeg."""
    path = tmp_path_factory.mktemp("clips") / "clip.mp4"
    subprocess.run(
        [
            get_ffmpeg_exe(), "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc=size=64x48:rate=8:duration=1",
            "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path),
        ],
        check=True,
    )  # fmt: skip
    return str(path)


def animate_args(keyframes: str, frames: int = 3, **kw) -> list:
    return [
        kw.get("model", ""), keyframes, "", frames, kw.get("fps", 4), 2, 5.0, "1", "slerp",
        kw.get("style", False), kw.get("smoothing", 0.0), kw.get("source", "none"), None, None, "folk", 1,
        "trim", 1.0, *STYLE,
    ]  # fmt: skip


def test_stylize_keeps_frames_and_audio(client, clip: str) -> None:
    preview, status, result = client.predict(
        handle_file(clip), 0.8, 0, 0, 0, 0, True, *STYLE, api_name="/video_stylize"
    )
    frames, seconds = count_frames_and_secs(video_path(result))
    assert frames == 8 and seconds == pytest.approx(1.0, abs=0.15)
    assert "Saved #" in status and "clip audio" in status and Path(preview).exists()


def test_animate_streams_previews_and_saves(client) -> None:
    job = client.submit(
        *animate_args("a red circle | 1\na blue square | 2", frames=4), api_name="/video_animate"
    )
    final = job.result()
    assert len(job.outputs()) >= 2, "expected previews before the result"
    frames, _ = count_frames_and_secs(video_path(final[2]))
    assert frames == 4 and "Saved #" in final[1]


def test_text_to_video_on_the_debug_model(client) -> None:
    _, status, result = client.predict(
        "", "a paper boat", "", 3, 4, 2, 7.5, "3", 0, api_name="/video_text_to_video"
    )
    frames, _ = count_frames_and_secs(video_path(result))
    assert frames == 3 and "Saved #" in status


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("empty", "empty"),
        ("text", "text file, not a video"),
        ("png", "PNG image, not a video, although its name ends in .mp4"),
        ("truncated", "could not be read as a video"),
    ],
)
def test_bad_clips_get_clear_errors(client, clip: str, tmp_path: Path, kind: str, message: str) -> None:
    path = tmp_path / "bad.mp4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not a video\n" * 10)
    elif kind == "png":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    else:
        path.write_bytes(Path(clip).read_bytes()[:200])
    with pytest.raises(AppError, match=message):
        client.predict(handle_file(str(path)), 0.8, 0, 0, 0, 0, True, *STYLE, api_name="/video_stylize")


@pytest.mark.parametrize(
    ("keyframes", "frames", "message"),
    [
        ("only one prompt | 1", 3, "at least two keyframes"),
        ("a | 1\nb | 2", 5000, "greater than maximum value 240"),
        ("", 3, "at least two"),
    ],
)
def test_bad_animations_get_clear_errors(client, keyframes: str, frames: int, message: str) -> None:
    with pytest.raises(AppError, match=message):
        client.predict(*animate_args(keyframes, frames), api_name="/video_animate")


def test_bad_text_to_video_and_missing_clip(client) -> None:
    with pytest.raises(AppError, match="prompt is empty"):
        client.predict("", "   ", "", 3, 4, 2, 7.5, "3", 0, api_name="/video_text_to_video")
    with pytest.raises(AppError, match="Upload a video clip"):
        client.predict(None, 0.8, 0, 0, 0, 0, True, *STYLE, api_name="/video_stylize")


def test_history_lists_and_shows_saved_videos(client) -> None:
    client.predict(*animate_args("a red circle | 5\n| 6"), api_name="/video_animate")
    table = client.predict(api_name="/video_history")
    rows = table["data"] if isinstance(table, dict) else table
    assert rows and rows[0][2] == "animate"
    video, params = client.predict(rows[0][0], api_name="/video_history_item")
    assert Path(video_path(video)).exists() and params["kind"] == "animate"
    assert params["keyframes"] == [
        {"prompt": "a red circle", "seed": 5},
        {"prompt": "a red circle", "seed": 6},
    ]
    with pytest.raises(AppError, match="id of one of your saved videos"):
        client.predict(999999, api_name="/video_history_item")
    choices = client.predict(api_name="/video_music_choices")
    assert choices is not None
