"""CLIP guidance and CLIP score with a tiny random CLIPModel built from a config, on the tiny SD."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.art.clip_guidance import ClipGuidance, clip_guided_sample, clip_score, load_scorer
from pipelines.art.models import DEBUG_ID, OFFLINE_DIR, OFFLINE_ID
from pipelines.art.pipeline import ArtPipeline, ArtRequest
from pipelines.testing import save_tiny_clip
from studio.events import CancelToken, Notice, Started, Step, UserError


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(save_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip"))


def run(art: ArtPipeline, request: ArtRequest) -> list:
    return list(art.generate(request, CancelToken()))


def test_scale_zero_loop_equals_the_plain_ddim_pipeline(ctx, clip: str) -> None:
    """The guided loop without guidance reproduces StableDiffusionPipeline exactly (same DDIM, same noise)."""
    pipe = ctx.registry.load(DEBUG_ID, "art").model.pipe

    def kwargs() -> dict:
        generator = torch.Generator("cpu").manual_seed(3)
        return {"prompt": "a red circle", "negative_prompt": None, "num_inference_steps": 6,
                "guidance_scale": 5.0, "generator": generator, "height": 64, "width": 64, "eta": 0.0}  # fmt: skip

    guided = clip_guided_sample(
        pipe, load_scorer(clip), ClipGuidance(clip, 0.0), kwargs(), lambda p, i, t, k: k
    )
    assert np.array_equal(np.asarray(guided), np.asarray(pipe(**kwargs()).images[0]))


def test_guidance_raises_the_clip_score_and_is_recorded(ctx, clip: str) -> None:
    art = ArtPipeline(ctx.registry, ctx.store, default_model=DEBUG_ID)
    base = {"prompt": "a red circle", "steps": 8, "seed": 3, "guidance_scale": 5.0}
    plain = run(art, ArtRequest(**base, clip=ClipGuidance(clip, 0.0)))[-1].result.images[0]
    events = run(art, ArtRequest(**base, clip=ClipGuidance(clip, 10_000.0)))
    assert isinstance(events[0], Started) and "CLIP guidance" in events[0].label
    assert [e.index for e in events if isinstance(e, Step)][-1] == 8
    guided = events[-1].result.images[0]
    plain_score = float(plain.parameters.split("CLIP score: ")[1].split(",")[0])
    guided_score = float(guided.parameters.split("CLIP score: ")[1].split(",")[0])
    assert guided_score > plain_score + 5, (plain_score, guided_score)
    assert "CLIP guidance scale: 10000.0" in guided.parameters
    assert "CLIP guidance scale" not in plain.parameters  # scale 0: a score only, plain sampling


def test_clip_score_per_image(clip: str) -> None:
    red, blue = Image.new("RGB", (48, 48), (220, 30, 30)), Image.new("RGB", (64, 64), (30, 30, 220))
    scores = clip_score([red, blue, red], "a red square", clip)
    assert len(scores) == 3 and all(0 <= s <= 100 for s in scores)
    assert scores[0] == scores[2] and scores == clip_score([red, blue, red], "a red square", clip)


def test_bad_clip_requests(ctx, clip: str, monkeypatch: pytest.MonkeyPatch) -> None:
    art = ArtPipeline(ctx.registry, ctx.store, default_model=DEBUG_ID)
    monkeypatch.delenv("STUDIO_CLIP_MODEL", raising=False)
    with pytest.raises(UserError, match="No CLIP model is configured"):
        clip_score([Image.new("RGB", (8, 8))], "x")
    with pytest.raises(UserError, match="could not be loaded"):
        run(art, ArtRequest("x", steps=2, clip=ClipGuidance(str(Path("/nonexistent/clip")), 10.0)))
    with pytest.raises(UserError, match="plain text-to-image"):
        art.generate(
            ArtRequest("x", init_image=Image.new("RGB", (8, 8)), clip=ClipGuidance(clip)), CancelToken()
        )
    events = run(art, ArtRequest("x", steps=2, sampler="Euler", clip=ClipGuidance(clip, 1.0)))
    assert any(isinstance(e, Notice) and "uses DDIM" in e.message for e in events)


@pytest.mark.skipif(not (OFFLINE_DIR / "model_index.json").exists(), reason="offline model not bundled")
def test_pixel_model_says_clip_guidance_needs_a_latent_model(ctx, clip: str) -> None:
    art = ArtPipeline(ctx.registry, ctx.store, default_model=OFFLINE_ID)
    with pytest.raises(UserError, match="needs a latent Stable Diffusion model"):
        run(art, ArtRequest("a red circle", steps=2, clip=ClipGuidance(clip, 100.0)))
