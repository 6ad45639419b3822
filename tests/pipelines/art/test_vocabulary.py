"""What the embedded art models know: the vocabulary file, the registry entries and versions, and the
notice for a prompt the model has no word for (the image is still drawn)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.art import ArtPipeline, ArtRequest
from pipelines.art.latent_diffusion import LatentArtPipeline
from pipelines.art.models import (
    OFFLINE_ID,
    SHAPES_DIR,
    SHAPES_ID,
    load_project_model,
    model_version,
    model_vocabulary,
)
from pipelines.art.vocabulary import load_vocabulary, save_vocabulary, vocabulary_from_dict
from pipelines.testing import tiny_latent_art_components
from studio.device import plan_for
from studio.events import CancelToken, Finished, Notice
from studio.registry import ModelEntry, Source
from studio.settings import Settings

V2_LIKE = {
    "model": "art-offline 2.0",
    "styles": ["noto emoji style", "flat twemoji style"],
    "categories": {"food and drink": ["red apple", "grapes"], "animals and nature": ["cat face", "dog"]},
    "examples": ["a red apple, food and drink, flat twemoji style"],
}


def test_a_vocabulary_knows_its_subject_words_and_names_them_for_an_unknown_prompt() -> None:
    vocab = vocabulary_from_dict(V2_LIKE)
    assert vocab.n_subjects == 4
    assert vocab.knows("a cat face, noto emoji style") and vocab.knows("a green apple")
    assert vocab.knows("   ")  # says nothing: no notice
    assert not vocab.knows("a quantum cathedral at dusk")
    notice = vocab.unknown_notice("a quantum cathedral at dusk")
    assert "red apple" in notice and "cat face" in notice
    assert vocab.unknown_notice("a red apple") == ""
    summary = vocab.summary(per_category=1)
    assert "4 subjects in 2 styles" in summary and "grapes" not in summary and "1 more" in summary


def test_the_bundled_shapes_model_has_a_vocabulary_and_both_ids_are_registered(ctx) -> None:
    vocab = load_vocabulary(SHAPES_DIR)
    assert vocab is not None and vocab.knows("two yellow stars at night") and "circle" in vocab.summary()
    entries = {e.id: e for e in ctx.registry.entries("art")}
    assert entries[SHAPES_ID].version == "1.0" and "v1.0" in entries[SHAPES_ID].display
    assert entries[OFFLINE_ID].version in ("1.0", "2.0")  # v2 takes the id once its weights are bundled
    assert model_version(Path(entries[OFFLINE_ID].path)) == entries[OFFLINE_ID].version


def test_the_ui_reads_a_bundled_models_vocabulary_without_loading_it(ctx) -> None:
    vocab = model_vocabulary(ctx.registry, SHAPES_ID)
    assert vocab is not None and vocab.n_subjects > 10 and vocab.styles == ("pixel art",)
    assert model_vocabulary(ctx.registry, OFFLINE_ID) is not None
    assert SHAPES_ID not in ctx.registry.loaded_ids()
    for other in ("stabilityai/sd-turbo", "debug-tiny-sd", "not a model id!"):
        assert model_vocabulary(ctx.registry, other) is None, other


def test_an_unknown_prompt_on_the_shapes_model_still_draws_and_says_what_it_knows(ctx) -> None:
    art = ArtPipeline(ctx.registry, ctx.store, default_model=SHAPES_ID)
    events = list(art.generate(ArtRequest("a quantum cathedral at dusk", steps=2, seed=1), CancelToken()))
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert any("trained on a fixed set of subjects" in m and "circle" in m for m in notices), notices
    assert isinstance(events[-1], Finished) and len(events[-1].result.images) == 1
    known = list(art.generate(ArtRequest("a red circle in the sky", steps=2, seed=1), CancelToken()))
    assert not any("fixed set" in e.message for e in known if isinstance(e, Notice))


def test_a_v2_folder_loads_as_a_latent_pipeline_with_its_version_and_vocabulary(tmp_path: Path) -> None:
    from training.art_latent.train_unet import latent_scheduler

    vae, unet = tiny_latent_art_components()
    LatentArtPipeline(vae=vae, unet=unet, scheduler=latent_scheduler()).save_pretrained(tmp_path)
    save_vocabulary(tmp_path, V2_LIKE)
    assert json.loads((tmp_path / "model_index.json").read_text())["model_version"] == "2.0"
    assert model_version(tmp_path) == "2.0"
    entry = ModelEntry("v2-test", "art", Source.BUNDLED, load_project_model, location=str(tmp_path))
    model = load_project_model(entry, plan_for(Settings()))
    assert isinstance(model.pipe, LatentArtPipeline) and model.native_size == 64
    assert model.vocabulary is not None and model.vocabulary.knows("grapes")


@pytest.mark.parametrize("prompt", ["", "a"])
def test_degenerate_prompts_do_not_raise_in_the_vocabulary(prompt: str) -> None:
    assert isinstance(vocabulary_from_dict(V2_LIKE).unknown_notice(prompt), str)
