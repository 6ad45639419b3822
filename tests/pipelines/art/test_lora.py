"""LoRA on the tiny random SD: weight 0 equals no LoRA, weight 1 changes the output, bad files refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.art.lora import LoraSpec, parse_lora_text, prompt_loras
from pipelines.art.models import DEBUG_ID, OFFLINE_DIR, OFFLINE_ID
from pipelines.art.pipeline import ArtPipeline, ArtRequest
from pipelines.metadata.png import read_png_parameters
from pipelines.testing import save_tiny_lora
from studio.events import CancelToken, Notice, UserError


@pytest.fixture(scope="module")
def lora_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_lora(tmp_path_factory.mktemp("lora") / "style")


@pytest.fixture(scope="module")
def second_lora(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_lora(tmp_path_factory.mktemp("lora2") / "other", seed=7)


@pytest.fixture(scope="module")
def misfit_lora(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_lora(
        tmp_path_factory.mktemp("lora3") / "misfit", unet_config={"block_out_channels": (16, 32)}
    )


def image(art: ArtPipeline, loras: tuple[LoraSpec, ...] = (), prompt: str = "a red circle") -> np.ndarray:
    events = list(art.generate(ArtRequest(prompt, steps=4, seed=11, loras=loras), CancelToken()))
    return np.asarray(events[-1].result.images[0].image).astype(int)


@pytest.fixture
def art(ctx) -> ArtPipeline:
    return ArtPipeline(ctx.registry, ctx.store, default_model=DEBUG_ID)


def test_weight_zero_equals_no_lora_and_weight_one_changes_the_output(
    art: ArtPipeline, lora_file: Path
) -> None:
    plain = image(art)
    zero = image(art, (LoraSpec(str(lora_file), 0.0),))
    one = image(art, (LoraSpec(str(lora_file), 1.0),))
    again = image(art)  # a request without LoRAs after one with: the adapter is switched off
    assert np.array_equal(zero, plain)
    assert np.abs(one - plain).mean() > 0.5
    assert np.array_equal(again, plain)


def test_two_loras_with_weights_and_png_parameters(
    art: ArtPipeline, lora_file: Path, second_lora: Path
) -> None:
    one = image(art, (LoraSpec(str(lora_file), 1.0),))
    both = image(art, (LoraSpec(str(lora_file), 1.0), LoraSpec(str(second_lora), 0.7, name="other")))
    assert np.abs(both - one).mean() > 0.1
    events = list(
        art.generate(
            ArtRequest("a castle", steps=2, seed=1, loras=(LoraSpec(str(lora_file), 0.8, name="style"),)),
            CancelToken(),
        )
    )
    saved = read_png_parameters(events[-1].result.images[0].path)
    assert saved.prompt == "a castle <lora:style:0.8>"


def test_prompt_tags_load_loras_from_the_lora_folder(ctx, lora_file: Path) -> None:
    art = ArtPipeline(ctx.registry, ctx.store, default_model=DEBUG_ID, lora_dir=lora_file.parent)
    tagged = image(art, prompt=f"a red circle <lora:{lora_file.stem}:1>")
    listed = image(art, (LoraSpec(str(lora_file), 1.0),))
    assert np.array_equal(tagged, listed)
    prompt, specs = prompt_loras("a cat, <lora:x:0.5> in a hat", None)
    assert prompt == "a cat, in a hat" and specs == (LoraSpec("x", 0.5, "x"),)


def test_a_lora_that_does_not_fit_names_the_mismatch_and_the_model_still_works(
    art: ArtPipeline, lora_file: Path, misfit_lora: Path
) -> None:
    plain = image(art)
    with pytest.raises(UserError, match=r"does not fit this model: layer .* has shape .* but .* in the file"):
        image(art, (LoraSpec(str(misfit_lora), 1.0),))
    assert np.array_equal(image(art), plain)  # the model works as before
    assert np.array_equal(image(art, (LoraSpec(str(lora_file), 0.0),)), plain)


def test_missing_file_and_bad_entries_are_clear_errors(art: ArtPipeline, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="could not be read"):
        image(art, (LoraSpec(str(tmp_path / "nope.safetensors"), 1.0),))
    with pytest.raises(UserError, match="between -4 and 4"):
        art.generate(ArtRequest("x", loras=(LoraSpec("a", 9.0),)), CancelToken())
    with pytest.raises(UserError, match="weight must be a number"):
        prompt_loras("<lora:x:1.2.3>", None)


def test_parse_lora_text() -> None:
    assert parse_lora_text("a/b.safetensors 0.5\n\nowner/repo\n<lora:c:0.3>") == (
        LoraSpec("a/b.safetensors", 0.5),
        LoraSpec("owner/repo", 1.0),
        LoraSpec("c", 0.3),
    )


@pytest.mark.skipif(not (OFFLINE_DIR / "model_index.json").exists(), reason="offline model not bundled")
def test_the_pixel_model_says_it_has_no_lora_support(ctx, lora_file: Path) -> None:
    art = ArtPipeline(ctx.registry, ctx.store, default_model=OFFLINE_ID)
    events = list(
        art.generate(
            ArtRequest("a red circle", steps=2, seed=1, loras=(LoraSpec(str(lora_file)),)), CancelToken()
        )
    )
    assert any(isinstance(e, Notice) and "no LoRA support" in e.message for e in events)
    assert events[-1].result.images
