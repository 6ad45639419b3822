"""Style presets: the data file is valid, templates apply by A1111's rule, several stack in order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.art.presets import MAX_STYLES, STYLES_FILE, StylePreset, apply_styles, load_styles, style_names
from studio.events import UserError


def test_the_bundled_file_has_a_good_set_of_styles() -> None:
    styles = load_styles()
    assert 20 <= len(styles) <= 40
    for wanted in ("Cinematic", "Watercolor", "Pixel art", "Line art", "Anime", "Photographic"):
        assert wanted in styles
    for preset in styles.values():
        assert preset.prompt.count("{prompt}") <= 1, preset.name
        assert preset.prompt.strip() and preset.negative_prompt.strip(), preset.name
    # every style actually changes a prompt
    assert len({apply_styles("a cat", "", [name])[0] for name in styles}) == len(styles)


def test_placeholder_and_append_rules() -> None:
    watercolor = StylePreset("w", "watercolor painting of {prompt}, soft", "photo")
    assert watercolor.apply("a fox", "blurry") == ("watercolor painting of a fox, soft", "blurry, photo")
    assert watercolor.apply("a fox", "") == ("watercolor painting of a fox, soft", "photo")
    suffix = StylePreset("s", "highly detailed", "")
    assert suffix.apply("a fox,", "blurry") == ("a fox, highly detailed", "blurry")


def test_several_styles_apply_in_order() -> None:
    prompt, negative = apply_styles("a lighthouse", "text", ["Watercolor", "Enhance"])
    styles = load_styles()
    assert prompt.startswith("watercolor painting of a lighthouse")
    assert prompt.endswith("highly detailed, sharp focus, beautiful composition, balanced lighting")
    assert negative.startswith("text, ") and styles["Enhance"].negative_prompt in negative
    assert apply_styles("a lighthouse", "text", []) == ("a lighthouse", "text")
    # order matters: the second template wraps the first one's output
    assert apply_styles("x", "", ["Watercolor", "Cinematic"]) != apply_styles(
        "x", "", ["Cinematic", "Watercolor"]
    )


def test_bad_choices_are_refused() -> None:
    with pytest.raises(UserError, match="Unknown style 'Nope'"):
        apply_styles("x", "", ["Nope"])
    with pytest.raises(UserError, match=f"at most {MAX_STYLES}"):
        apply_styles("x", "", style_names()[: MAX_STYLES + 1])


def test_a_custom_file(tmp_path: Path) -> None:
    path = tmp_path / "styles.json"
    path.write_text(json.dumps({"styles": [{"name": "Mine", "prompt": "{prompt} in my style"}]}))
    assert style_names(path) == ["Mine"]
    assert apply_styles("a boat", "", ["Mine"], path) == ("a boat in my style", "")
    assert STYLES_FILE.name == "styles.json"


def test_the_pipeline_applies_styles_and_records_them(ctx) -> None:
    from pipelines.art.models import DEBUG_ID
    from pipelines.art.pipeline import ArtPipeline, ArtRequest
    from pipelines.metadata import read_png_parameters
    from studio.events import CancelToken

    art = ArtPipeline(ctx.registry, ctx.store, default_model=DEBUG_ID)
    request = ArtRequest("a fox", "blurry", steps=2, seed=4, styles=("Watercolor", "Enhance"))
    image = list(art.generate(request, CancelToken()))[-1].result.images[0]
    expected = apply_styles("a fox", "blurry", ["Watercolor", "Enhance"])
    saved = read_png_parameters(image.path)
    assert (saved.prompt, saved.negative_prompt) == expected
    assert saved.settings["Styles"] == "Watercolor, Enhance"
    with pytest.raises(UserError, match="Unknown style"):
        art.generate(ArtRequest("a fox", styles=("Nope",)), CancelToken())
