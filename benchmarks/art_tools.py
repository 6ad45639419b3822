"""`python -m benchmarks art_tools`: cost of the X/Y/Z plot machinery and of PNG Info.

Rows:
- xyz_vs_single_runs: a 4-cell X/Y/Z plot (Seed 1-4) on the embedded offline model against the
  same 4 images made by 4 plain ArtPipeline runs, interleaved; the ratio is the grid's overhead
  (planning, labelled grid drawing, grid PNG + side JSON, History record);
- pnginfo_read: milliseconds to read the parameters of our own PNG, an A1111 PNG and a ComfyUI PNG.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image, PngImagePlugin

from benchmarks.common import interleaved, temp_context
from pipelines.art import ArtPipeline, ArtRequest, Axis, XYZPlot, XYZRequest
from pipelines.metadata import read_png_info
from studio.events import CancelToken

STEPS = 10
CELLS = 4


def _xyz_rows() -> list[dict]:
    ctx = temp_context()
    art = ArtPipeline(ctx.registry, ctx.store)
    plot = XYZPlot(art)
    base = ArtRequest("a red circle in a blue sky", steps=STEPS, guidance_scale=2.0, seed=1)

    def grid() -> None:
        list(plot.generate(XYZRequest(base, x=Axis("Seed", f"1-{CELLS}")), CancelToken()))

    def singles() -> None:
        for seed in range(1, CELLS + 1):
            list(
                art.generate(
                    ArtRequest(base.prompt, steps=STEPS, guidance_scale=2.0, seed=seed), CancelToken()
                )
            )

    times = interleaved({"xyz": grid, "singles": singles}, rounds=3)
    model = ctx.registry.default_id("art")
    return [
        {
            "row": "xyz_vs_single_runs",
            "model": model,
            "cells": CELLS,
            "steps": STEPS,
            "xyz_s": round(times["xyz"], 3),
            "singles_s": round(times["singles"], 3),
            "ratio_xyz_over_singles": round(times["xyz"] / times["singles"], 3),
        }
    ]


def _png(path: Path, chunks: dict[str, str]) -> Path:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    Image.new("RGB", (512, 512), (90, 90, 200)).save(path, pnginfo=info)
    return path


def _pnginfo_rows() -> list[dict]:
    folder = Path(tempfile.mkdtemp(prefix="pnginfo-bench-"))
    ours = "a fox\nNegative prompt: blurry\nSteps: 25, Sampler: DDIM, CFG scale: 2.0, Seed: 1, Size: 512x512, Model: art-offline, Version: creative-studio"
    a1111 = "a castle\nNegative prompt: fog\nSteps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 2, Size: 512x512, Model: v1-5"
    prompt = {
        "3": {
            "class_type": "KSampler",
            "inputs": {"seed": 1, "steps": 20, "cfg": 8, "sampler_name": "euler", "scheduler": "normal",
                       "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]},
        },
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "model.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
    }  # fmt: skip
    links = [[1, 4, 0, 3, 0, "MODEL"], [2, 6, 0, 3, 1, "CONDITIONING"], [3, 7, 0, 3, 2, "CONDITIONING"],
             [4, 5, 0, 3, 3, "LATENT"], [5, 4, 1, 6, 0, "CLIP"], [6, 4, 1, 7, 0, "CLIP"]]  # fmt: skip
    files = {
        "ours": _png(folder / "ours.png", {"parameters": ours}),
        "a1111": _png(folder / "a1111.png", {"parameters": a1111}),
        "comfyui": _png(
            folder / "comfy.png", {"prompt": json.dumps(prompt), "workflow": json.dumps({"links": links})}
        ),
    }
    read_png_info(files["ours"])  # warm-up: imports sd-parsers
    row: dict = {"row": "pnginfo_read", "size": "512x512"}
    for name, path in files.items():
        samples = []
        for _ in range(20):
            start = time.perf_counter()
            assert read_png_info(path).found
            samples.append(time.perf_counter() - start)
        row[f"{name}_ms"] = round(statistics.median(samples) * 1000, 2)
    return [row]


def run() -> list[dict]:
    return [*_pnginfo_rows(), *_xyz_rows()]
