"""Hub text-to-video code paths on tiny random AnimateDiff and text-to-video-ms pipelines (offline)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from imageio_ffmpeg import count_frames_and_secs
from PIL import Image

from pipelines.video import T2V_TASK, TextToVideoRequest, VideoPipeline
from pipelines.video.models import DEBUG_ANIMATEDIFF_ID, DEBUG_T2V_MS_ID
from studio.events import CancelToken, Finished, Notice, Started, Step, UserError

MODELS = [DEBUG_ANIMATEDIFF_ID, DEBUG_T2V_MS_ID]


@pytest.fixture
def video(ctx) -> VideoPipeline:
    return VideoPipeline(ctx.registry, ctx.store)


@pytest.mark.parametrize("model", MODELS)
def test_events_previews_mp4_and_history(video: VideoPipeline, ctx, model: str) -> None:
    request = TextToVideoRequest("a paper boat", model_id=model, frames=4, fps=4, steps=3, seed=5)
    events = list(video.text_to_video(request, CancelToken()))
    assert isinstance(events[0], Started) and events[0].total == 3
    steps = [e for e in events if isinstance(e, Step)]
    assert [s.index for s in steps] == [1, 2, 3] and all(isinstance(s.preview, Image.Image) for s in steps)
    result = events[-1].result
    assert isinstance(events[-1], Finished) and result.path.exists()
    frames, seconds = count_frames_and_secs(str(result.path))
    assert frames == 4 and seconds == pytest.approx(1.0, abs=0.2)
    record = ctx.store.get(result.record_id)
    assert record.task == "video" and record.params["kind"] == "text-to-video" and record.params["seed"] == 5


@pytest.mark.parametrize("model", MODELS)
def test_streamed_equals_plain_diffusers_call(video: VideoPipeline, ctx, model: str) -> None:
    request = TextToVideoRequest("a fox", model_id=model, frames=3, steps=3, seed=9, guidance_scale=6.0)
    streamed = list(video.text_to_video(request, CancelToken()))[-1].result.last_frame
    pipe = ctx.registry.load(model, T2V_TASK).model.pipe
    plain = pipe(
        "a fox",
        num_frames=3,
        num_inference_steps=3,
        guidance_scale=6.0,
        width=64,
        height=64,
        generator=torch.Generator("cpu").manual_seed(9),
        output_type="np",
    ).frames[0][-1]
    assert np.array_equal(np.asarray(streamed), (np.clip(plain, 0, 1) * 255 + 0.5).astype(np.uint8))


@pytest.mark.parametrize("model", MODELS)
def test_cancel_stops_within_one_step_and_saves_nothing(video: VideoPipeline, ctx, model: str) -> None:
    cancel = CancelToken()
    events = []
    for event in video.text_to_video(
        TextToVideoRequest("x", model_id=model, frames=2, steps=30, seed=1), cancel
    ):
        events.append(event)
        if isinstance(event, Step) and event.index >= 3:
            cancel.cancel()
    result = events[-1].result
    assert result.cancelled and result.path is None
    assert max(e.index for e in events if isinstance(e, Step)) <= 5
    assert ctx.store.history("video") == []


def test_unknown_hub_id_falls_back_offline_with_a_notice(video: VideoPipeline) -> None:
    request = TextToVideoRequest("a cat", model_id="nobody/no-such-video-model", frames=2, steps=1, seed=1)
    events = list(video.text_to_video(request, CancelToken()))
    assert any(isinstance(e, Notice) for e in events)
    assert events[-1].result.path is not None


def test_bad_requests_are_user_errors(video: VideoPipeline) -> None:
    for request in (
        TextToVideoRequest(""),
        TextToVideoRequest("x" * 5000),
        TextToVideoRequest("x", frames=1000),
        TextToVideoRequest("x", steps=0),
        TextToVideoRequest("x", width=30),
        TextToVideoRequest("x", seed="abc"),
        TextToVideoRequest("x", fps=100),
    ):
        with pytest.raises(UserError):
            video.text_to_video(request, CancelToken())
