"""Prompt travel on the tiny random SD (hub code path) and on the embedded offline art model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from imageio_ffmpeg import count_frames_and_secs

from pipelines.art import ArtPipeline, ArtRequest
from pipelines.art.models import DEBUG_ID, OFFLINE_DIR, OFFLINE_ID
from pipelines.style import StyleMode, StyleRequest
from pipelines.video import AnimateRequest, Keyframe, VideoPipeline, parse_keyframes
from pipelines.video.animate import pad_even, slerp, travel_positions, validate
from studio.events import CancelToken, Finished, Notice, Started, Step, UserError


def run(pipeline: VideoPipeline, request: AnimateRequest, cancel: CancelToken | None = None) -> list:
    return list(pipeline.animate(request, cancel or CancelToken()))


def art_image(ctx, model: str, prompt: str, seed: int, steps: int, cfg: float) -> np.ndarray:
    art = ArtPipeline(ctx.registry, ctx.store)
    request = ArtRequest(prompt, model_id=model, sampler="DDIM", steps=steps, guidance_scale=cfg, seed=seed)
    events = list(art.generate(request, CancelToken()))
    return np.asarray(events[-1].result.images[0].image)


@pytest.fixture
def video(ctx) -> VideoPipeline:
    return VideoPipeline(ctx.registry, ctx.store, art_model=DEBUG_ID)


KEYS = (Keyframe("a red circle in a blue sky", 11), Keyframe("three yellow stars at sunset", 12))


@pytest.mark.parametrize("model", [DEBUG_ID, OFFLINE_ID])
def test_endpoint_frames_equal_single_art_images(ctx, model: str) -> None:
    if model == OFFLINE_ID and not OFFLINE_DIR.joinpath("model_index.json").exists():
        pytest.skip("the offline art model is not in assets/")
    video = VideoPipeline(ctx.registry, ctx.store)
    request = AnimateRequest(KEYS, model_id=model, frames=3, fps=4, steps=5, guidance_scale=2.0)
    result = run(video, request)[-1].result
    assert len(result.raw_frames) == 3
    first = art_image(ctx, model, KEYS[0].prompt, KEYS[0].seed, 5, 2.0)
    last = art_image(ctx, model, KEYS[1].prompt, KEYS[1].seed, 5, 2.0)
    assert np.array_equal(np.asarray(result.raw_frames[0]), first)
    assert np.array_equal(np.asarray(result.raw_frames[-1]), last)
    # the middle frame is neither endpoint: the travel really interpolates
    middle = np.asarray(result.raw_frames[1]).astype(int)
    assert np.abs(middle - first).mean() > 1 and np.abs(middle - last).mean() > 1


def test_events_mp4_and_history(video: VideoPipeline, ctx) -> None:
    events = run(video, AnimateRequest(KEYS, frames=5, fps=5, steps=3, guidance_scale=5.0))
    assert isinstance(events[0], Started) and events[0].total == 15
    steps = [e for e in events if isinstance(e, Step)]
    assert steps[-1].index == 15 and all(s.total == 15 for s in steps)
    assert all(s.preview is not None for s in steps if s.info.get("frame"))
    result = events[-1].result
    assert isinstance(events[-1], Finished) and result.path.exists() and result.path.suffix == ".mp4"
    frames, seconds = count_frames_and_secs(str(result.path))
    assert frames == 5 and seconds == pytest.approx(1.0, abs=0.2)
    assert result.size == (64, 64) and result.seeds == (11, 12)
    record = ctx.store.get(result.record_id)
    assert record.task == "video" and record.params["kind"] == "animate"
    assert record.params["keyframes"] == [{"prompt": k.prompt, "seed": k.seed} for k in KEYS]


def test_seed_only_travel_and_slerp_embeddings(video: VideoPipeline) -> None:
    keys = (Keyframe("a blue square", 1), Keyframe("", 2), Keyframe("", 3))
    request = AnimateRequest(keys, frames=5, fps=4, steps=2, interpolation="slerp")
    result = run(video, request)[-1].result
    assert result.seeds == (1, 2, 3) and result.frames == 5
    assert result.params["keyframes"][2]["prompt"] == "a blue square"  # a seed-only keyframe keeps the prompt


def test_style_and_smoothing_change_the_output(video: VideoPipeline) -> None:
    style = StyleRequest(content=None, mode=StyleMode.FILTER, filter_name="stylization", filter_amount=0.5)
    base = AnimateRequest(KEYS, frames=3, fps=4, steps=2)
    plain = run(video, base)[-1].result
    styled = run(video, AnimateRequest(KEYS, frames=3, fps=4, steps=2, style=style, smoothing=0.7))[-1].result
    assert np.array_equal(np.asarray(plain.raw_frames[1]), np.asarray(styled.raw_frames[1]))
    assert not np.array_equal(np.asarray(plain.last_frame), np.asarray(styled.last_frame))
    assert styled.params["style"]["mode"] == "filter" and styled.params["smoothing"] == 0.7


def test_cancel_stops_within_one_step_and_keeps_finished_frames(video: VideoPipeline) -> None:
    cancel = CancelToken()
    events = []
    for event in video.animate(AnimateRequest(KEYS, frames=8, fps=4, steps=10), cancel):
        events.append(event)
        if isinstance(event, Step) and event.index >= 25:  # mid-way through frame 3
            cancel.cancel()
    result = events[-1].result
    last_step = max(e.index for e in events if isinstance(e, Step))
    assert last_step <= 27  # at most one more step after the Stop was seen (plus the stale-drop slack)
    assert result.cancelled and result.frames == 2 and result.path is not None
    assert any(isinstance(e, Notice) and "Stopped" in e.message for e in events)


def test_bad_requests_are_user_errors(video: VideoPipeline) -> None:
    cases = [
        AnimateRequest((Keyframe("one", 1),)),
        AnimateRequest(KEYS, frames=1000),
        AnimateRequest(KEYS, fps=0),
        AnimateRequest(KEYS, steps=0),
        AnimateRequest((Keyframe("", 1), Keyframe("", 2))),
        AnimateRequest((Keyframe("same", 1), Keyframe("same", 1))),
        AnimateRequest(KEYS, interpolation="cubic"),
        AnimateRequest(KEYS, width=30),
        AnimateRequest(KEYS, smoothing=2),
    ]
    for request in cases:
        with pytest.raises(UserError):
            video.animate(request, CancelToken())


def test_travel_positions_land_keyframes_on_frames() -> None:
    positions = travel_positions(7, 3)
    assert positions[0] == (0, 0.0) and positions[3] == (1, 0.0) and positions[-1] == (1, 1.0)
    assert all(0 <= t <= 1 for _, t in positions)


def test_slerp_endpoints_exact_and_norm_kept() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1, 4, 64, 64, generator=g), torch.randn(1, 4, 64, 64, generator=g)
    assert torch.equal(slerp(a, b, 0.0), a) and torch.equal(slerp(a, b, 1.0), b)
    mid = slerp(a, b, 0.5)
    # equal-norm noises: the slerp midpoint keeps the norm, the lerp midpoint shrinks it (~1/sqrt 2)
    mean_norm = (a.norm() + b.norm()) / 2
    assert mid.norm() / mean_norm == pytest.approx(1.0, abs=0.02)
    assert ((a + b) / 2).norm() / mean_norm < 0.8
    per_token = slerp(a[0, 0], b[0, 0], 0.3, dim=-1)
    assert per_token.shape == (64, 64)


def test_parse_keyframes() -> None:
    keys = parse_keyframes("a red circle | 5\n\nthree stars\n| 9", base_seed=3)
    assert keys == (Keyframe("a red circle", 5), Keyframe("three stars", 3), Keyframe("", 9))
    with pytest.raises(UserError):
        parse_keyframes("a | x")
    assert validate(AnimateRequest(keys)).keyframes[2] == Keyframe("three stars", 9)


def test_odd_sized_frames_are_padded_to_even() -> None:
    frame = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    padded = pad_even(frame)
    assert padded.shape == (6, 8, 3)
    assert np.array_equal(padded[:5, :7], frame) and np.array_equal(padded[5, :7], frame[4])
    assert pad_even(padded) is padded
