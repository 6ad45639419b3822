"""Soundtracks: pick a Music result from History, an audio file, or compose one; fit and mux into the MP4."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
from imageio_ffmpeg import count_frames_and_secs

from pipelines.art.models import DEBUG_ID
from pipelines.music import ComposeRequest
from pipelines.video import AnimateRequest, Keyframe, SoundtrackRequest, VideoPipeline, probe_clip
from pipelines.video.soundtrack import audio_duration, music_history, resolve
from studio.events import CancelToken, Notice, UserError

KEYS = (Keyframe("a red circle", 1), Keyframe("a blue square", 2))


def sine_wav(path, seconds: float, sr: int = 22050):
    t = np.arange(int(seconds * sr)) / sr
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr)
    return path


@pytest.fixture
def video(ctx) -> VideoPipeline:
    return VideoPipeline(ctx.registry, ctx.store, art_model=DEBUG_ID)


def animate(video: VideoPipeline, sound: SoundtrackRequest, frames: int = 4, fps: float = 4) -> list:
    request = AnimateRequest(KEYS, frames=frames, fps=fps, steps=2, soundtrack=sound)
    return list(video.animate(request, CancelToken()))


def audio_seconds(path) -> float:
    return audio_duration(path)  # ffmpeg reads the MP4's audio stream when soundfile cannot


def test_trim_cuts_and_fades_long_music_to_the_video(video: VideoPipeline, tmp_path) -> None:
    wav = sine_wav(tmp_path / "long.wav", 5.0)
    result = animate(video, SoundtrackRequest(source="file", audio_path=str(wav), fit="trim"))[-1].result
    info = probe_clip(result.path)
    assert info.has_audio and info.audio_codec == "aac"
    frames, _ = count_frames_and_secs(str(result.path))
    assert frames == 4 and result.duration == pytest.approx(1.0)
    assert audio_seconds(result.path) == pytest.approx(1.0, abs=0.1)
    assert result.soundtrack == "long.wav"


def test_follow_sets_the_frame_count_from_the_music(video: VideoPipeline, tmp_path) -> None:
    wav = sine_wav(tmp_path / "short.wav", 1.6)
    result = animate(video, SoundtrackRequest(source="file", audio_path=str(wav), fit="follow"), fps=5)[
        -1
    ].result
    assert result.frames == 8  # ceil(1.6 s x 5 fps)
    frames, _ = count_frames_and_secs(str(result.path))
    assert frames == 8
    assert audio_seconds(result.path) == pytest.approx(1.6, abs=0.1)


def test_short_music_under_trim_leaves_silence_with_a_notice(video: VideoPipeline, tmp_path) -> None:
    wav = sine_wav(tmp_path / "blip.wav", 0.5)
    events = animate(video, SoundtrackRequest(source="file", audio_path=str(wav), fit="trim"))
    assert any(isinstance(e, Notice) and "shorter than the video" in e.message for e in events)
    assert probe_clip(events[-1].result.path).has_audio


def test_compose_in_place_then_pick_it_from_history(video: VideoPipeline, ctx) -> None:
    compose = ComposeRequest(style="folk", bars=1, seed=3)
    first = animate(video, SoundtrackRequest(source="compose", compose=compose, fit="follow"), fps=2)[
        -1
    ].result
    rows = music_history(ctx.store)
    assert len(rows) == 1 and rows[0].title == first.soundtrack
    composed = rows[0]
    assert first.frames == int(np.ceil(composed.params["duration_s"] * 2 - 1e-6))
    again = animate(video, SoundtrackRequest(source="history", record_id=composed.id))[-1].result
    assert again.soundtrack == composed.title and probe_clip(again.path).has_audio
    assert ctx.store.get(again.record_id).params["soundtrack"]["record_id"] == composed.id
    # the Music tab's "Send to Video" hands over the WAV path: it is recognised as that History row
    wav = next(f for f in composed.files if f.suffix == ".wav")
    sent = resolve(
        SoundtrackRequest(source="file", audio_path=str(wav)), ctx.store, video.music, CancelToken(), print
    )
    assert (sent.title, sent.record_id) == (composed.title, composed.id)


def test_bad_soundtracks_are_user_errors(video: VideoPipeline, ctx, tmp_path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all")
    for request in (
        SoundtrackRequest(source="file", audio_path=str(empty)),
        SoundtrackRequest(source="file", audio_path=str(text)),
        SoundtrackRequest(source="history", record_id=12345),
    ):
        with pytest.raises(UserError):
            resolve(request, ctx.store, video.music, CancelToken(), lambda e: None)
    for request in (
        SoundtrackRequest(source="history"),
        SoundtrackRequest(source="radio"),
        SoundtrackRequest(source="file", audio_path="x.wav", fit="stretch"),
        SoundtrackRequest(source="file", audio_path="x.wav", fade_s=60),
    ):
        with pytest.raises(UserError):
            video.animate(AnimateRequest(KEYS, soundtrack=request), CancelToken())
