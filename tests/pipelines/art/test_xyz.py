"""X/Y/Z plot on the tiny random SD model: value syntax, labelled grid, metadata, limit, cancel."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pipelines.art.grid import MIN_CELL
from pipelines.art.models import DEBUG_ID
from pipelines.art.pipeline import ArtPipeline, ArtRequest
from pipelines.art.xyz import MAX_CELLS, Axis, XYZPlot, XYZRequest, expand_numbers, split_values
from pipelines.metadata import GenerationParameters
from studio.events import CancelToken, Finished, Started, Step, UserError


@pytest.fixture
def plot(ctx) -> XYZPlot:
    return XYZPlot(ArtPipeline(ctx.registry, ctx.store, default_model=DEBUG_ID))


def test_a1111_value_syntax() -> None:
    assert expand_numbers("1-5", True, "Steps") == [1, 2, 3, 4, 5]
    assert expand_numbers("1-10 (+2)", True, "Steps") == [1, 3, 5, 7, 9]
    assert expand_numbers("10-20 [3]", True, "Steps") == [10, 15, 20]
    assert expand_numbers("5-1", True, "Seed") == [5, 4, 3, 2, 1]
    assert expand_numbers("1.5-3 (+0.5), 7", False, "CFG") == [1.5, 2.0, 2.5, 3.0, 7.0]
    assert expand_numbers("-1, 3", True, "Seed") == [-1, 3]
    assert split_values('DDIM, "a, b", Euler a') == ["DDIM", "a, b", "Euler a"]
    with pytest.raises(UserError, match="not a number or a range"):
        expand_numbers("1-x", True, "Steps")
    with pytest.raises(UserError, match="never reaches"):
        expand_numbers("1-5 (-1)", True, "Steps")


def test_grid_has_the_right_labelled_cells(plot: XYZPlot, ctx) -> None:
    request = XYZRequest(
        ArtRequest("a red circle in a blue sky", steps=3, seed=7),
        x=Axis("CFG scale", "1, 7"),
        y=Axis("Sampler", "DDIM, Euler a, UniPC"),
        z=Axis("Prompt S/R", "red, green"),
    )
    events = list(plot.generate(request, CancelToken()))
    started, result = events[0], events[-1].result
    assert isinstance(started, Started) and started.total == 2 * 3 * 2 * 3
    steps = [e for e in events if isinstance(e, Step)]
    assert steps[-1].index == started.total and all(e.total == started.total for e in steps)
    assert {e.info["cells"] for e in steps} == {12} and max(e.info["cell"] for e in steps) == 12
    assert all(isinstance(e.preview, Image.Image) for e in steps if e.preview is not None)
    # 12 labelled cells, each its own saved image with the right parameters
    assert result.shape == (2, 3, 2) and len(result.cells) == 12 and not result.cancelled
    labels = {(c.x, c.y, c.z): c.label for c in result.cells}
    assert labels[(1, 2, 1)] == "CFG scale: 7 · Sampler: UniPC · green"
    for cell in result.cells:
        settings = GenerationParameters.from_text(cell.parameters).settings
        assert settings["Seed"] == "7"  # one seed for the whole grid
        assert settings["CFG scale"] == ["1.0", "7.0"][cell.x]
        assert settings["Sampler"] == ["DDIM", "Euler a", "UniPC"][cell.y]
        assert ("green" in cell.parameters) == (cell.z == 1)
        assert cell.path.exists()
    # cells that differ only in CFG differ in pixels
    a, b = (np.asarray(Image.open(c.path)) for c in result.cells if (c.y, c.z) == (0, 0))
    assert not np.array_equal(a, b)
    # two grids (one per Z value), stacked; each wider than its 2 columns of 128 px cells
    assert len(result.grids) == 2 and result.grid.height > sum(g.height for g in result.grids) - 1
    assert all(g.width > 2 * MIN_CELL and g.height > 3 * MIN_CELL for g in result.grids)
    # the grid PNG and the side JSON carry every cell's parameters; History has the grid
    with Image.open(result.path) as saved:
        side = json.loads(saved.text["xyz"])
        header = GenerationParameters.from_text(saved.text["parameters"])
    assert header.settings["X Type"] == "CFG scale" and header.settings["Z Values"] == "red, green"
    assert len(side["cells"]) == 12 and side["shape"] == [2, 3, 2]
    assert json.loads(result.json_path.read_text())["cells"] == side["cells"]
    record = ctx.store.get(result.record_id)
    assert record.params["xyz"] and record.files[0] == result.path


def test_labels_are_drawn(plot: XYZPlot) -> None:
    """The header band holds dark label pixels; an unlabelled grid has none there."""
    base = ArtRequest("a dot", steps=2, seed=1)
    labelled = list(plot.generate(XYZRequest(base, x=Axis("Steps", "1-2")), CancelToken()))[-1].result
    top = np.asarray(labelled.grid.convert("L"))[:12]
    assert (top < 100).sum() > 20  # column headers "Steps: 1", "Steps: 2"


def test_more_than_100_cells_is_refused_before_anything_runs(plot: XYZPlot, ctx) -> None:
    request = XYZRequest(ArtRequest("x", steps=2), x=Axis("Seed", "1-11"), y=Axis("Steps", "1-10"))
    with pytest.raises(UserError, match=rf"11 × 10 × 1 = 110 images; the limit is {MAX_CELLS}"):
        plot.generate(request, CancelToken())
    assert ctx.registry.loaded_ids() == []  # refused up front: no model was even loaded


def test_bad_axes_are_clear_errors(plot: XYZPlot) -> None:
    base = ArtRequest("a red circle", steps=2)
    cases = [
        (XYZRequest(base), "at least one"),
        (XYZRequest(base, x=Axis("Steps", "1,2"), y=Axis("Steps", "3")), "different parameter"),
        (XYZRequest(base, x=Axis("Sampler", "DDIM, Heun")), "unknown sampler 'Heun'"),
        (XYZRequest(base, x=Axis("Prompt S/R", "blue, green")), "'blue' is not in the prompt"),
        (XYZRequest(base, x=Axis("Steps", "0-2")), "Steps must be between 1"),
        (XYZRequest(base, x=Axis("Steps", "")), "has no values"),
        (XYZRequest(base, x=Axis("Denoising strength", "0.3, 0.6")), "needs an init image"),
    ]
    for request, message in cases:
        with pytest.raises(UserError, match=message):
            plot.generate(request, CancelToken())


def test_cancel_stops_within_a_cell_and_keeps_the_finished_cells(plot: XYZPlot) -> None:
    request = XYZRequest(ArtRequest("a red circle", steps=20, seed=3), x=Axis("Seed", "1-6"))
    cancel = CancelToken()
    events = []
    for event in plot.generate(request, cancel):
        events.append(event)
        if isinstance(event, Step) and event.info["cell"] == 2 and event.preview is not None:
            cancel.cancel()  # Stop pressed while the second cell is denoising
    result = events[-1].result
    assert isinstance(events[-1], Finished) and result.cancelled
    assert [c.x for c in result.cells] == [0]  # the half-denoised second cell is not kept
    steps = [e for e in events if isinstance(e, Step)]
    assert steps[-1].index <= 20 + 20  # nothing ran after the cell that was stopped
    assert result.path is not None and result.path.exists()  # the partial grid is saved


def test_clip_score_is_measured_for_every_cell(plot: XYZPlot, tmp_path) -> None:
    """The CLIP score (a tiny random CLIPModel from a config) is a measured value per cell."""
    from pipelines.art import clip_score
    from pipelines.testing import save_tiny_clip

    clip = str(save_tiny_clip(tmp_path / "tiny-clip"))
    request = XYZRequest(
        ArtRequest("a dot", steps=2, seed=5),
        x=Axis("Seed", "1, 2"),
        scorer=lambda images, prompt: clip_score(images, prompt, clip),
    )
    result = list(plot.generate(request, CancelToken()))[-1].result
    for cell in result.cells:
        expected = clip_score([Image.open(cell.path)], "a dot", clip)[0]
        assert cell.clip_score == pytest.approx(expected, abs=1e-3)
        assert cell.label.endswith(f"CLIP {cell.clip_score:.2f}")
    with Image.open(result.path) as saved:
        side = json.loads(saved.text["xyz"])
    assert [c["clip_score"] for c in side["cells"]] == [c.clip_score for c in result.cells]


def test_styles_axis(plot: XYZPlot) -> None:
    request = XYZRequest(ArtRequest("a boat", steps=2, seed=2), x=Axis("Styles", "None, Pixel art"))
    result = list(plot.generate(request, CancelToken()))[-1].result
    plain, styled = sorted(result.cells, key=lambda c: c.x)
    assert plain.label == "No style" and styled.label == "Style: Pixel art"
    assert plain.parameters.startswith("a boat\n") and styled.parameters.startswith("pixel art of a boat")
    with pytest.raises(UserError, match="Unknown style"):
        plot.generate(XYZRequest(ArtRequest("a boat", steps=2), x=Axis("Styles", "Nope")), CancelToken())


def test_model_axis_runs_model_by_model(plot: XYZPlot) -> None:
    """Ids or labels; cells of different native sizes (64 px tiny SD, 256 px offline) share one grid."""
    label = next(e.display for e in plot.pipeline.registry.entries("art") if e.id == "art-offline")
    request = XYZRequest(
        ArtRequest("a red circle", steps=2, seed=1, guidance_scale=2.0),
        x=Axis("Model", f'debug-tiny-sd, "{label}"'),
        y=Axis("Seed", "1, 2"),
    )
    result = list(plot.generate(request, CancelToken()))[-1].result
    models = {c.x: GenerationParameters.from_text(c.parameters).settings["Model"] for c in result.cells}
    assert models[0].startswith("Debug") and models[1] == label
    sizes = {c.x: Image.open(c.path).size for c in result.cells}
    assert sizes[0] != sizes[1] and result.grid.width > 2 * MIN_CELL
