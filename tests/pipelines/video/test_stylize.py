"""Clip stylization end to end on the real ONNX style networks (tiny clips, 1 thread)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.style import StyleMode, StyleRequest, register_style_models
from pipelines.video.flow import FlowEstimator, flicker
from pipelines.video.io import iter_frames, plan_read
from pipelines.video.probe import probe
from pipelines.video.stylize import STORE_TASK, StylizeRequest, StylizeResult, stylize_clip
from studio.context import StudioContext
from studio.events import CancelToken, Finished, Notice, Started, Step, UserError
from studio.settings import Settings
from tests.pipelines.video.clips import (
    count_frames,
    make_clip,
    moving_frames,
    stream_durations,
    write_frames_clip,
)

PRESET = StyleRequest(content=None, mode=StyleMode.PRESET, styles={3: 1.0})


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> StudioContext:
    """One context (the ONNX networks load once) shared by the module's tests."""
    root = tmp_path_factory.mktemp("studio")
    settings = Settings(output_dir=root / "out", data_dir=root / "data", offline=True, threads=1)
    ctx = StudioContext.create(settings)
    register_style_models(ctx.registry, settings.data_dir)
    return ctx


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("stylize")
    return {
        "audio": make_clip(folder / "audio.mp4", (96, 64), fps=12, seconds=2.0),
        "silent": make_clip(folder / "silent.mp4", (64, 48), fps=10, seconds=1.0, audio=None),
        "moving": write_frames_clip(folder / "moving.mp4", moving_frames(12, side=128), fps=12),
    }


def _run(
    request: StylizeRequest, studio: StudioContext, cancel: CancelToken | None = None
) -> tuple[list, StylizeResult]:
    events = list(stylize_clip(request, studio.registry, studio.store, cancel or CancelToken()))
    assert isinstance(events[-1], Finished)
    return events, events[-1].result


def test_output_keeps_frame_count_fps_duration_and_audio(
    clips: dict[str, Path], studio: StudioContext
) -> None:
    source = probe(clips["audio"])
    events, result = _run(StylizeRequest(clips["audio"], PRESET), studio)
    steps = [e for e in events if isinstance(e, Step)]
    assert isinstance(events[0], Started) and events[0].total == 24
    assert len(steps) == 24 and steps[-1].index == 24
    assert all(isinstance(s.preview, Image.Image) and s.preview.size == (96, 64) for s in steps)
    assert steps[-1].eta_s == pytest.approx(0.0, abs=1e-6) and steps[1].eta_s > 0
    # the file: H.264 with the clip's frame count, rate and length, and its audio
    out = probe(result.path)
    assert out.video_codec == "h264" and (out.width, out.height) == (96, 64)
    assert count_frames(result.path) == result.frames == 24
    assert out.fps == pytest.approx(source.fps)
    lengths, original = stream_durations(result.path), stream_durations(clips["audio"])
    assert lengths["v"] == pytest.approx(original["v"], abs=1 / 12)
    assert out.has_audio and out.audio_codec == "aac" and result.has_audio
    assert lengths["a"] == pytest.approx(original["a"], abs=1 / 12)
    # the frames really are stylized, and History has the parameters
    first = next(iter_frames(out, plan_read(out)))
    plain = next(iter_frames(source, plan_read(source)))
    assert np.abs(first.astype(float) - plain).mean() > 20
    record = studio.store.get(result.record_id)
    assert record.task == STORE_TASK and record.files == (result.path,)
    assert record.params["frames"] == 24 and record.params["style"]["styles"] == {"3": 1.0}
    assert record.params["consistency"] == 0.8


def test_trimmed_output_keeps_the_matching_audio(clips: dict[str, Path], studio: StudioContext) -> None:
    _, result = _run(StylizeRequest(clips["audio"], PRESET, start=0.5, end=1.5, size=48), studio)
    assert result.frames == 12 and result.size == (48, 32)
    lengths = stream_durations(result.path)
    assert lengths["v"] == pytest.approx(1.0, abs=1 / 12) and lengths["a"] == pytest.approx(1.0, abs=1 / 12)


def test_opus_audio_of_a_webm_is_copied_into_the_mp4(tmp_path: Path, studio: StudioContext) -> None:
    webm = make_clip(tmp_path / "clip.webm", (64, 48), fps=10, seconds=1.0, audio="libopus", codec="libvpx")
    style = StyleRequest(content=None, mode=StyleMode.FILTER, filter_name="pencil")
    events, result = _run(StylizeRequest(webm, style), studio)
    out = probe(result.path)
    assert out.video_codec == "h264" and out.audio_codec == "opus" and result.frames == 10
    assert not any(isinstance(e, Notice) and "re-encoded" in e.message for e in events)


def test_a_clip_without_audio_gives_a_silent_video_and_says_so(
    clips: dict[str, Path], studio: StudioContext
) -> None:
    style = StyleRequest(content=None, mode=StyleMode.FILTER, filter_name="cartoon")
    events, result = _run(StylizeRequest(clips["silent"], style, consistency=0.5), studio)
    assert any(isinstance(e, Notice) and "no audio track" in e.message for e in events)
    assert not result.has_audio and not probe(result.path).has_audio
    assert result.frames == 10


def test_flow_blending_cuts_flicker_at_least_3x(clips: dict[str, Path], studio: StudioContext) -> None:
    source = probe(clips["moving"])
    frames = list(iter_frames(source, plan_read(source)))
    estimator = FlowEstimator()
    source_flows = [p for p in (estimator.push(f) for f in frames) if p is not None]

    def output_flicker(consistency: float) -> float:
        _, result = _run(StylizeRequest(clips["moving"], PRESET, consistency=consistency), studio)
        info = probe(result.path)
        return flicker(list(iter_frames(info, plan_read(info))), source_flows)

    frame_by_frame, blended = output_flicker(0.0), output_flicker(0.8)
    print(f"flicker frame by frame {frame_by_frame:.2f}, blended {blended:.2f}")
    assert frame_by_frame / blended >= 3.0, (frame_by_frame, blended)


def test_cancel_stops_within_one_frame_and_saves_nothing(
    clips: dict[str, Path], studio: StudioContext
) -> None:
    saved_before = sorted(studio.store.root.rglob("*.mp4"))
    rows_before = len(studio.store.history(STORE_TASK))
    cancel = CancelToken()
    steps = 0
    events = []
    for event in stylize_clip(StylizeRequest(clips["audio"], PRESET), studio.registry, studio.store, cancel):
        events.append(event)
        if isinstance(event, Step):
            steps += 1
            if steps == 3:
                cancel.cancel()
    result = events[-1].result
    assert steps == 3 and result.cancelled and result.frames == 3
    assert result.path is None and result.record_id is None
    assert len(studio.store.history(STORE_TASK)) == rows_before
    assert sorted(studio.store.root.rglob("*.mp4")) == saved_before  # no file, not even a partial one


def test_a_style_image_works_on_every_frame(clips: dict[str, Path], studio: StudioContext) -> None:
    style_image = Image.open(Path(__file__).resolve().parents[3] / "assets" / "styles" / "sample.jpg")
    style = StyleRequest(content=None, mode=StyleMode.IMAGE, style_image=style_image, strength=0.7)
    _, result = _run(StylizeRequest(clips["silent"], style, fps=5), studio)
    assert result.frames == 5 and result.fps == 5.0
    assert result.params["style"]["mode"] == "image" and result.params["style"]["strength"] == 0.7


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"consistency": 1.5}, "Consistency"),
        ({"flow_preset": "warp9"}, "flow preset"),
        ({"clip": None}, "Upload a video"),
        ({"style": StyleRequest(content=None, mode=StyleMode.GATYS, style_image=b"x")}, "too slow"),
        ({"style": StyleRequest(content=None, styles={}, mode=StyleMode.PRESET)}, "Pick at least one style"),
        ({"end": 0.2, "start": 0.5}, "must come after start"),
    ],
)
def test_bad_requests_fail_before_any_frame(
    clips: dict[str, Path], studio: StudioContext, change: dict, message: str
) -> None:
    request = StylizeRequest(clips["silent"], PRESET)
    request = StylizeRequest(**{**request.__dict__, **change})
    with pytest.raises(UserError, match=message):
        stylize_clip(request, studio.registry, studio.store, CancelToken())


def test_a_bad_upload_fails_with_a_clear_message(tmp_path: Path, studio: StudioContext) -> None:
    fake = tmp_path / "holiday.mp4"
    fake.write_text("not a video at all")
    with pytest.raises(UserError, match="not a video"):
        stylize_clip(StylizeRequest(fake, PRESET), studio.registry, studio.store, CancelToken())


def test_a_truncated_clip_keeps_the_frames_it_has(tmp_path: Path, studio: StudioContext) -> None:
    # index first (faststart), media cut at 60%: ffmpeg opens it and decodes what is there
    whole = make_clip(
        tmp_path / "whole.mp4", (64, 48), fps=12, seconds=2.0, extra=("-movflags", "+faststart")
    )
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    events, result = _run(StylizeRequest(cut, PRESET), studio)
    assert 0 < result.frames < 24 and result.path is not None
    assert count_frames(result.path) == result.frames
    assert any(isinstance(e, Notice) and "may be truncated" in e.message for e in events)


def test_an_abandoned_job_cleans_up_and_saves_nothing(clips: dict[str, Path], studio: StudioContext) -> None:
    import tempfile

    scratch_before = set(Path(tempfile.gettempdir()).glob("studio-stylize-*"))
    saved_before = sorted(studio.store.root.rglob("*.mp4"))
    events = stylize_clip(
        StylizeRequest(clips["audio"], PRESET), studio.registry, studio.store, CancelToken()
    )
    for event in events:
        if isinstance(event, Step) and event.index == 2:
            break
    events.close()  # what happens when the browser goes away mid-job
    assert set(Path(tempfile.gettempdir()).glob("studio-stylize-*")) == scratch_before
    assert sorted(studio.store.root.rglob("*.mp4")) == saved_before
