"""Art pipeline on a tiny random Stable Diffusion pipeline built from configs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.art.images import load_init_image
from pipelines.art.models import DEBUG_ID
from pipelines.art.pipeline import SAMPLERS, ArtPipeline, ArtRequest
from pipelines.metadata.png import GenerationParameters, read_png_parameters
from pipelines.testing import save_tiny_sd
from studio.events import CancelToken, Finished, Notice, Started, Step, UserError
from studio.inputs import parse_seed


def run(art: ArtPipeline, request: ArtRequest, cancel: CancelToken | None = None) -> list:
    return list(art.generate(request, cancel or CancelToken()))


@pytest.fixture
def art(ctx) -> ArtPipeline:
    return ArtPipeline(ctx.registry, ctx.store, default_model=DEBUG_ID)


def test_event_sequence_is_well_formed(art: ArtPipeline) -> None:
    events = run(art, ArtRequest("a red circle", steps=6, seed=1, batch_count=2, preview_every=1))
    assert isinstance(events[0], Started) and events[0].total == 12
    assert isinstance(events[-1], Finished)
    steps = [e for e in events if isinstance(e, Step)]
    assert [s.index for s in steps] == sorted({s.index for s in steps}) and steps[-1].index == 12
    assert all(s.total == 12 and isinstance(s.preview, Image.Image) for s in steps)
    assert all(s.eta_s is not None and s.eta_s >= 0 for s in steps)
    result = events[-1].result
    assert [img.seed for img in result.images] == [1, 2]  # batch seeds count up
    assert all(img.path.exists() for img in result.images)


def test_streamed_equals_plain_diffusers_call(art: ArtPipeline, ctx) -> None:
    """Previews and the worker thread must not change the image for a seed."""
    request = ArtRequest("a blue square", steps=8, seed=1234, guidance_scale=5.0)
    streamed = np.asarray(run(art, request)[-1].result.images[0].image)
    pipe = ctx.registry.load(DEBUG_ID, "art").model.pipe
    plain = pipe(
        "a blue square",
        num_inference_steps=8,
        guidance_scale=5.0,
        generator=torch.Generator("cpu").manual_seed(1234),
        height=64,
        width=64,
    ).images[0]
    assert np.array_equal(streamed, np.asarray(plain))


def test_same_seed_same_image_random_seed_reported(art: ArtPipeline) -> None:
    a = run(art, ArtRequest("x", steps=4, seed=99))[-1].result.images[0]
    b = run(art, ArtRequest("x", steps=4, seed=99))[-1].result.images[0]
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    r = run(art, ArtRequest("x", steps=4, seed=-1))[-1].result.images[0]
    assert 0 <= r.seed < 2**32 and f"Seed: {r.seed}" in r.parameters


def test_cancel_stops_within_one_step(art: ArtPipeline, ctx) -> None:
    cancel = CancelToken()
    pipe = ctx.registry.load(DEBUG_ID, "art").model.pipe
    calls = {"n": 0}
    hook = pipe.unet.register_forward_hook(lambda *a: calls.__setitem__("n", calls["n"] + 1))
    try:
        seen = 0
        result = None
        for event in art.generate(ArtRequest("x", steps=40, seed=3, batch_count=3), cancel):
            if isinstance(event, Step):
                seen = event.index
                if event.index >= 5:
                    cancel.cancel()
            if isinstance(event, Finished):
                result = event.result
    finally:
        hook.remove()
    # the step after the one that saw the cancel is skipped: at most one extra UNet call
    assert calls["n"] <= seen + 2, (calls, seen)
    assert result.cancelled and result.images == []  # the half-denoised image is not saved


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_every_sampler_runs(art: ArtPipeline, sampler: str) -> None:
    result = run(art, ArtRequest("x", sampler=sampler, steps=4, seed=5))[-1].result
    assert result.sampler == sampler and result.images[0].image.size == (64, 64)


def test_img2img_runs_the_strength_fraction(art: ArtPipeline) -> None:
    init = Image.new("RGB", (100, 80), (200, 30, 30))
    events = run(art, ArtRequest("x", steps=10, strength=0.5, init_image=init, seed=2))
    assert events[0].total == 5
    image = events[-1].result.images[0]
    assert "Denoising strength: 0.5" in image.parameters and image.image.size == (64, 64)


def test_png_parameters_round_trip(art: ArtPipeline) -> None:
    request = ArtRequest(
        "a castle, at dusk: oil", negative_prompt="blurry", steps=3, seed=77, guidance_scale=6.5
    )
    image = run(art, request)[-1].result.images[0]
    parsed = read_png_parameters(image.path)
    assert parsed.prompt == "a castle, at dusk: oil" and parsed.negative_prompt == "blurry"
    assert parsed.settings["Seed"] == "77" and parsed.settings["Steps"] == "3"
    assert parsed.settings["CFG scale"] == "6.5" and parsed.settings["Sampler"] == "DDIM"
    assert GenerationParameters.from_text(parsed.to_text()) == parsed


def test_a1111_text_with_quoted_values() -> None:
    text = 'cat\nsecond line\nNegative prompt: dog\nSteps: 20, Sampler: Euler a, Model: "a, b", Seed: 1'
    parsed = GenerationParameters.from_text(text)
    assert parsed.prompt == "cat\nsecond line" and parsed.negative_prompt == "dog"
    assert parsed.settings == {"Steps": "20", "Sampler": "Euler a", "Model": "a, b", "Seed": "1"}


def test_history_records_parameters(art: ArtPipeline, ctx) -> None:
    image = run(art, ArtRequest("history me", steps=2, seed=8))[-1].result.images[0]
    record = ctx.store.get(image.record_id)
    assert record.params["prompt"] == "history me" and record.params["seed"] == 8
    assert record.files == (image.path.resolve(),)


def test_hub_path_loads_a_saved_pipeline_with_from_pretrained(art: ArtPipeline, tmp_path: Path) -> None:
    folder = save_tiny_sd(tmp_path / "my-sd", seed=1)  # a "hub" checkpoint in the ordinary layout
    events = run(art, ArtRequest("x", model_id=str(folder), steps=3, seed=1))
    assert not [e for e in events if isinstance(e, Notice)]
    assert events[-1].result.model == str(folder)


def test_hub_failure_falls_back_with_visible_notice(art: ArtPipeline, tmp_path: Path) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "model_index.json").write_text("{not json")
    for model_id in [str(broken), "nobody/does-not-exist"]:
        events = run(art, ArtRequest("x", model_id=model_id, steps=2, seed=1))
        notices = [e.message for e in events if isinstance(e, Notice)]
        assert any("embedded default" in n for n in notices), notices
        assert events[-1].result.images


@pytest.mark.parametrize(
    ("request_kwargs", "message"),
    [
        ({"prompt": ""}, "prompt is empty"),
        ({"prompt": " \x00\x07 "}, "prompt is empty"),
        ({"steps": 0}, "Steps"),
        ({"steps": 10_000}, "Steps"),
        ({"width": 100}, "multiple of 8"),
        ({"height": 100_000}, "Height"),
        ({"batch_count": 99}, "Batch count"),
        ({"sampler": "Magic"}, "Unknown sampler"),
        ({"guidance_scale": -1}, "CFG"),
    ],
)
def test_bad_requests_are_user_errors(art: ArtPipeline, request_kwargs: dict, message: str) -> None:
    request = ArtRequest(**{"prompt": "ok", **request_kwargs})
    with pytest.raises(UserError, match=message):
        run(art, request)


def test_huge_prompt_is_truncated_with_notice(art: ArtPipeline) -> None:
    events = run(art, ArtRequest("a cat " * 2000, steps=2, seed=1))
    assert any("truncated" in e.message for e in events if isinstance(e, Notice))
    assert len(events[-1].result.images[0].parameters) < 2500


def test_seed_parsing() -> None:
    assert parse_seed("42") == 42 and parse_seed("") == -1 and parse_seed(None) == -1
    for bad in ["abc", "1.5e99", "-7", str(2**40)]:
        with pytest.raises(UserError, match="Seed"):
            parse_seed(bad)


def test_init_image_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(UserError, match="zero-byte"):
        load_init_image(empty)
    for path in [corrupt, text]:
        with pytest.raises(UserError, match="could not be read"):
            load_init_image(path)
    buffer = io.BytesIO()
    Image.new("L", (10, 10)).save(buffer, format="PNG")
    assert load_init_image(buffer.getvalue()).mode == "RGB"


def test_history_survives_an_app_restart(settings) -> None:
    from app import create_context

    first = create_context(settings)
    art = ArtPipeline(first.registry, first.store, default_model=DEBUG_ID)
    image = run(art, ArtRequest("remember me", steps=2, seed=3))[-1]
    image = image.result.images[0]
    restarted = create_context(settings)  # same output dir, fresh process state
    [record] = restarted.store.history("art")
    assert record.id == image.record_id and record.params["prompt"] == "remember me"
    assert read_png_parameters(record.files[0]).settings["Seed"] == "3"


def test_img2img_with_too_few_steps_for_its_strength_runs_one_denoising_step(art: ArtPipeline) -> None:
    init = Image.new("RGB", (64, 64), (200, 40, 40))
    events = run(art, ArtRequest("x", steps=2, strength=0.2, init_image=init, seed=2))
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert any("leave no denoising step; ran 5 steps" in m for m in notices), notices
    assert isinstance(events[-1], Finished) and "Steps: 5" in events[-1].result.images[0].parameters
    with pytest.raises(UserError, match="too small"):
        run(art, ArtRequest("x", steps=2, strength=0.001, init_image=init, seed=2))
