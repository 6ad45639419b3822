"""The Art model list (one row per set of weights) and the 'What the offline model knows' panel's text."""

from __future__ import annotations

from pages.art_models import art_model_choices, vocabulary_markdown
from pipelines.art.models import DEBUG_ID, OFFLINE_DIR, OFFLINE_ID, SHAPES_DIR, SHAPES_ID


def test_the_model_list_shows_each_set_of_weights_once(ctx) -> None:
    ids = [model_id for _, model_id in art_model_choices(ctx)]
    assert OFFLINE_ID in ids and DEBUG_ID in ids and len(ids) == len(set(ids))
    # until v2 is bundled, art-offline and art-offline-shapes are the same folder: listed once
    assert (SHAPES_ID in ids) == (OFFLINE_DIR != SHAPES_DIR)
    assert len({label for label, _ in art_model_choices(ctx)}) == len(ids)


def test_the_panel_lists_what_a_bundled_model_knows_and_is_empty_for_others(ctx) -> None:
    text = vocabulary_markdown(ctx, SHAPES_ID)
    assert "circle" in text and "pixel art" in text and "Try:" in text
    assert vocabulary_markdown(ctx, OFFLINE_ID)  # the default has a vocabulary whichever version it is
    assert vocabulary_markdown(ctx, DEBUG_ID) == ""
    assert vocabulary_markdown(ctx, "stabilityai/sd-turbo") == ""
