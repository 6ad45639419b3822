"""X/Y/Z plot: one Art request varied along up to three axes, drawn as a labelled grid.

Axis values use A1111's syntax: a comma list (`DDIM, Euler a`, quotes for values with commas),
integer/float ranges `1-5`, `1-10 (+2)` (step) and `10-20 [3]` (count, ends included).
`Prompt S/R` searches for its first value in the prompt and replaces it with each value in turn.

`XYZPlot.generate(request, cancel)` yields Started(total steps of the whole grid) ->
Step(preview = the current cell's denoising, info = cell k of N) ... -> Finished(XYZResult).
Each cell is an ordinary ArtPipeline run (saved with its own parameters); the grid PNG carries
every cell's parameters in an `xyz` text chunk and in a side JSON file, and is recorded in History.
A Stop ends the current cell within one step and keeps a grid of the finished cells.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from pipelines.art.grid import draw_grid, stack_grids
from pipelines.art.pipeline import (
    SAMPLERS,
    TASK,
    ArtImage,
    ArtPipeline,
    ArtRequest,
    ArtResult,
    _effective_steps,
)
from pipelines.metadata import GenerationParameters
from studio.events import CancelToken, Event, Finished, Notice, Started, Step, UserError
from studio.inputs import MAX_SEED

log = logging.getLogger(__name__)

MAX_CELLS = 100  # A1111 has no limit; on a CPU a bigger grid is hours of work
MAX_VALUES = 100  # values on one axis
AXIS_TYPES = (
    "Nothing",
    "Seed",
    "Steps",
    "CFG scale",
    "Sampler",
    "Prompt S/R",
    "Model",
    "Styles",
    "Denoising strength",
)
_NUMBER = r"[+-]?\d+(?:\.\d*)?"
_RANGE = re.compile(rf"^\s*({_NUMBER})\s*-\s*({_NUMBER})\s*(?:\(\s*({_NUMBER})\s*\)|\[\s*(\d+)\s*\])?\s*$")

Scorer = Callable[[list[Image.Image], str], list[float]]  # (images, prompt) -> CLIP score per image


@dataclass(frozen=True)
class Axis:
    kind: str = "Nothing"  # one of AXIS_TYPES
    values: str = ""  # as typed, e.g. "1-10 (+2)"


@dataclass(frozen=True)
class XYZRequest:
    base: ArtRequest  # the Art settings every cell starts from (batch count is 1 per cell)
    x: Axis = field(default_factory=Axis)
    y: Axis = field(default_factory=Axis)
    z: Axis = field(default_factory=Axis)
    scorer: Scorer | None = field(default=None, repr=False, compare=False)  # CLIP score per cell


@dataclass(frozen=True)
class XYZCell:
    x: int  # column
    y: int  # row
    z: int  # grid
    label: str  # "Steps: 10 · CFG scale: 5"
    seed: int
    path: Path  # the cell's own PNG
    record_id: int
    parameters: str  # the cell's A1111 infotext
    clip_score: float | None = None


@dataclass(frozen=True)
class XYZResult:
    grid: Image.Image  # all Z grids stacked
    grids: list[Image.Image]  # one per Z value
    cells: list[XYZCell]
    shape: tuple[int, int, int]  # (columns, rows, grids)
    path: Path | None  # the saved grid PNG (None when stopped before any cell finished)
    json_path: Path | None
    record_id: int | None
    cancelled: bool = False


# -- axis values ---------------------------------------------------------------------------------


def split_values(text: str) -> list[str]:
    """A1111's split: a CSV line, spaces after commas skipped, quotes keep commas inside a value."""
    values = next(csv.reader(io.StringIO(text.strip()), skipinitialspace=True), [])
    return [v.strip() for v in values if v.strip()]


def expand_numbers(text: str, integer: bool, name: str) -> list[float]:
    """`1, 3, 5`, `1-5`, `1-10 (+2)`, `10-20 [3]` (and mixes of them) -> the numbers."""
    out: list[float] = []
    for item in split_values(text):
        match = _RANGE.match(item)
        try:
            if match is None:
                out.append(float(item))
                continue
            start, end = float(match.group(1)), float(match.group(2))
            if match.group(4) is not None:  # [count]: evenly spaced, both ends included
                count = int(match.group(4))
                if not 1 <= count <= MAX_VALUES:
                    raise UserError(f"{name}: a [count] must be between 1 and {MAX_VALUES} (got {count}).")
                span = (end - start) / (count - 1) if count > 1 else 0.0
                out.extend(start + k * span for k in range(count))
                continue
            step = float(match.group(3)) if match.group(3) is not None else (1.0 if end >= start else -1.0)
            if step == 0 or (end - start) * step < 0:
                raise UserError(f"{name}: the step in {item!r} never reaches the end of the range.")
            n = int((end - start) / step + 1e-9) + 1
            if n > MAX_VALUES:
                raise UserError(f"{name}: {item!r} has {n} values; at most {MAX_VALUES} per axis.")
            out.extend(start + k * step for k in range(n))
        except ValueError:
            raise UserError(
                f"{name}: {item!r} is not a number or a range (write e.g. 1-5, 1-10 (+2) or 10-20 [3])."
            ) from None
    if integer:
        return [float(round(v)) for v in out]
    return [round(v, 4) for v in out]


def axis_values(axis: Axis, base: ArtRequest, models: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """An axis -> [(label, ArtRequest field changes)] for each of its values."""
    kind, name = axis.kind, f"{axis.kind} axis"
    if kind not in AXIS_TYPES:
        raise UserError(f"Unknown X/Y/Z axis type {kind!r}. Choose one of: {', '.join(AXIS_TYPES)}.")
    if kind == "Nothing":
        return [("", {})]
    if not axis.values.strip():
        raise UserError(f"The {name} has no values; write e.g. 1-5 or a comma list.")
    values: list[tuple[str, dict[str, Any]]]
    if kind in ("Seed", "Steps"):
        numbers = [int(v) for v in expand_numbers(axis.values, True, name)]
        key = "seed" if kind == "Seed" else "steps"
        values = [(f"{kind}: {v}", {key: v}) for v in numbers]
    elif kind in ("CFG scale", "Denoising strength"):
        key = "guidance_scale" if kind == "CFG scale" else "strength"
        values = [(f"{kind}: {v:g}", {key: v}) for v in expand_numbers(axis.values, False, name)]
        if kind == "Denoising strength" and base.init_image is None:
            raise UserError("The Denoising strength axis needs an init image (img2img).")
    elif kind == "Sampler":
        by_lower = {s.lower(): s for s in SAMPLERS}
        values = []
        for v in split_values(axis.values):
            if v.lower() not in by_lower:
                raise UserError(f"Sampler axis: unknown sampler {v!r}. Choose from: {', '.join(SAMPLERS)}.")
            values.append((f"Sampler: {by_lower[v.lower()]}", {"sampler": by_lower[v.lower()]}))
    elif kind == "Model":
        values = []
        for v in split_values(axis.values):
            model_id = models.get(v, v)  # a display label or an id (registered, hub or folder)
            values.append((f"Model: {v}", {"model_id": model_id}))
    elif kind == "Styles":  # one style preset per value ("None" = no style), on top of the base styles
        values = [
            ("No style" if v.lower() == "none" else f"Style: {v}", {"styles": _with_style(base.styles, v)})
            for v in split_values(axis.values)
        ]
    else:  # Prompt S/R
        words = split_values(axis.values)
        search = words[0]
        if search not in base.prompt and search not in base.negative_prompt:
            raise UserError(f"Prompt S/R: {search!r} is not in the prompt or the negative prompt.")
        values = [
            (
                word,
                {
                    "prompt": base.prompt.replace(search, word),
                    "negative_prompt": base.negative_prompt.replace(search, word),
                },
            )
            for word in words
        ]
    if len(values) > MAX_VALUES:
        raise UserError(f"The {name} has {len(values)} values; at most {MAX_VALUES}.")
    return values


# -- the plot ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    requests: list[tuple[int, int, int, str, ArtRequest]]  # (x, y, z, label, request) in run order
    x: list[str]
    y: list[str]
    z: list[str]


class XYZPlot:
    def __init__(self, pipeline: ArtPipeline) -> None:
        self.pipeline = pipeline

    def plan(self, request: XYZRequest) -> _Plan:
        """Every cell's ArtRequest, checked before anything runs (bad values, > MAX_CELLS)."""
        kinds = [a.kind for a in (request.x, request.y, request.z) if a.kind != "Nothing"]
        if not kinds:
            raise UserError("Choose at least one X/Y/Z axis type (e.g. X = Steps, values 10, 20, 30).")
        if len(set(kinds)) != len(kinds):
            raise UserError(f"Each axis must vary a different parameter (got {', '.join(kinds)}).")
        base = request.base
        seed = int(base.seed)
        if seed == -1:  # one random seed for the whole grid, so the cells are comparable
            seed = random.randint(0, MAX_SEED)
        base = replace(base, seed=seed, batch_count=1)
        models = {entry.display: entry.id for entry in self.pipeline.registry.entries(TASK)}
        xs, ys, zs = (axis_values(a, base, models) for a in (request.x, request.y, request.z))
        cells = len(xs) * len(ys) * len(zs)
        if cells > MAX_CELLS:
            raise UserError(
                f"This X/Y/Z plot would make {len(xs)} × {len(ys)} × {len(zs)} = {cells} images; "
                f"the limit is {MAX_CELLS}. Use fewer values."
            )
        planned = []
        for z, (zl, zc) in enumerate(zs):
            for y, (yl, yc) in enumerate(ys):
                for x, (xl, xc) in enumerate(xs):
                    label = " · ".join(part for part in (xl, yl, zl) if part)
                    cell = replace(base, **{**zc, **yc, **xc})
                    self.pipeline.generate(cell, CancelToken())  # validates only: nothing runs until iterated
                    planned.append((x, y, z, label, cell))
        if "Model" in kinds:  # run model by model: each is loaded once, not once per cell
            order = {v: k for k, v in enumerate(dict.fromkeys(c[4].model_id for c in planned))}
            planned.sort(key=lambda c: order[c[4].model_id])
        return _Plan(planned, [lbl for lbl, _ in xs], [lbl for lbl, _ in ys], [lbl for lbl, _ in zs])

    def generate(self, request: XYZRequest, cancel: CancelToken) -> Iterator[Event]:
        """Plan (raising UserError for a bad grid) now; run the cells when iterated."""
        planned = self.plan(request)
        return self._run(request, planned, cancel)

    def _run(self, request: XYZRequest, planned: _Plan, cancel: CancelToken) -> Iterator[Event]:
        n = len(planned.requests)
        if request.base.batch_count != 1:
            yield Notice("X/Y/Z plot draws one image per cell; the batch count was ignored.", "info")
        total = sum(_effective_steps(cell) for *_, cell in planned.requests)
        yield Started(total, f"X/Y/Z plot · {n} images")
        done_steps, seen_notices = 0, set()
        images: dict[tuple[int, int, int], ArtImage] = {}
        cells: list[XYZCell] = []
        for k, (x, y, z, label, cell) in enumerate(planned.requests):
            if cancel.cancelled:
                break
            events = self.pipeline.generate(cell, cancel)
            result: ArtResult | None = None
            try:
                # 1. one ordinary Art run; its steps become steps of the whole grid
                for event in events:
                    if isinstance(event, Step):
                        index = min(done_steps + event.index, total)
                        info = {"cell": k + 1, "cells": n, "label": label}
                        yield Step(index, total, event.preview, event.eta_s, info)
                    elif isinstance(event, Notice) and event.message not in seen_notices:
                        seen_notices.add(event.message)
                        yield event
                    elif isinstance(event, Finished):
                        result = event.result
            finally:
                events.close()  # a consumer that went away stops the cell's worker too
            done_steps += _effective_steps(cell)
            if result is None or not result.images:
                break  # stopped mid-cell: that cell is half-denoised noise, not kept
            image = result.images[0]
            images[(x, y, z)] = image
            score = None
            if request.scorer is not None:
                score = float(request.scorer([image.image], cell.prompt)[0])
                label = f"{label} · {_score_text(score)}"
            cells.append(
                XYZCell(x, y, z, label, image.seed, image.path, image.record_id, image.parameters, score)
            )
            yield Step(
                min(done_steps, total), total, image.image, None, {"cell": k + 1, "cells": n, "label": label}
            )
        yield Finished(self._finish(request, planned, images, cells, cancel.cancelled))

    def _finish(
        self,
        request: XYZRequest,
        planned: _Plan,
        images: dict[tuple[int, int, int], ArtImage],
        cells: list[XYZCell],
        cancelled: bool,
    ) -> XYZResult:
        nx, ny, nz = len(planned.x), len(planned.y), len(planned.z)
        scores = {(c.x, c.y, c.z): c.clip_score for c in cells}
        grids = []
        for z in range(nz):
            rows = [[_cell_image(images.get((x, y, z))) for x in range(nx)] for y in range(ny)]
            x_labels = planned.x if request.x.kind != "Nothing" else []
            y_labels = planned.y if request.y.kind != "Nothing" else []
            captions = None
            if any(scores.get((x, y, z)) is not None for x in range(nx) for y in range(ny)):
                # the measured value under each cell
                captions = [[_score_text(scores.get((x, y, z))) for x in range(nx)] for y in range(ny)]
            grids.append(draw_grid(rows, x_labels, y_labels, planned.z[z], captions))
        grid = stack_grids(grids)
        if not cells:
            return XYZResult(grid, grids, cells, (nx, ny, nz), None, None, None, cancelled)
        path, json_path, record_id = self._save(request, planned, grid, cells, cancelled)
        return XYZResult(grid, grids, cells, (nx, ny, nz), path, json_path, record_id, cancelled)

    def _save(
        self, request: XYZRequest, planned: _Plan, grid: Image.Image, cells: list[XYZCell], cancelled: bool
    ) -> tuple[Path, Path, int]:
        base = request.base
        settings: dict[str, Any] = {"Script": "X/Y/Z plot"}
        for name, axis in (("X", request.x), ("Y", request.y), ("Z", request.z)):
            if axis.kind != "Nothing":
                settings[f"{name} Type"], settings[f"{name} Values"] = axis.kind, axis.values
        settings.update(
            {
                "Steps": base.steps,
                "Sampler": base.sampler,
                "CFG scale": base.guidance_scale,
                "Seed": cells[0].seed,
                "Cells": f"{len(cells)}/{len(planned.requests)}",
                "Version": "creative-studio",
            }
        )
        infotext = GenerationParameters(base.prompt, base.negative_prompt, settings).to_text()
        cell_rows = [{**asdict(c), "path": str(c.path)} for c in sorted(cells, key=lambda c: (c.z, c.y, c.x))]
        side = {
            "axes": {
                "x": asdict(request.x) | {"labels": planned.x},
                "y": asdict(request.y) | {"labels": planned.y},
                "z": asdict(request.z) | {"labels": planned.z},
            },
            "shape": [len(planned.x), len(planned.y), len(planned.z)],
            "cancelled": cancelled,
            "cells": cell_rows,
        }

        def write_png(tmp: Path) -> None:
            info = PngImagePlugin.PngInfo()
            info.add_text("parameters", infotext)
            info.add_itxt("xyz", json.dumps(side, ensure_ascii=False), zip=True)  # every cell's parameters
            grid.save(tmp, format="PNG", pnginfo=info)

        path = self.pipeline.store.write(TASK, ".png", write_png)
        json_path = path.with_suffix(".json")
        tmp = json_path.with_name(json_path.stem + ".partial.json")
        tmp.write_text(json.dumps(side, indent=1, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, json_path)  # atomic, as the store writes its files
        title = f"X/Y/Z plot · {base.prompt[:160]}"
        params = {
            "xyz": True,
            "prompt": base.prompt,
            "negative_prompt": base.negative_prompt,
            "model_id": base.model_id,
            "sampler": base.sampler,
            "steps": base.steps,
            "guidance_scale": base.guidance_scale,
            "seed": cells[0].seed,
            "x": asdict(request.x),
            "y": asdict(request.y),
            "z": asdict(request.z),
            "cells": len(cells),
            "cancelled": cancelled,
        }
        record = self.pipeline.store.record(TASK, title, params, [path, json_path])
        return path, json_path, record.id


def _with_style(styles: tuple[str, ...], name: str) -> tuple[str, ...]:
    return tuple(styles) if name.lower() == "none" else (*styles, name)


def _cell_image(image: ArtImage | None) -> Image.Image | None:
    return None if image is None else image.image


def _score_text(value: float | None) -> str:
    return "" if value is None else f"CLIP {value:.2f}"
