"""`python -m benchmarks art_offline`: speed and adherence of the bundled offline art model.

Rows:
- ddim_25_steps: seconds for 25 DDIM steps at native resolution (batch 1, CFG on);
- ddim25_vs_ddpm250: the same with 250 DDPM steps, and the ratio DDIM/DDPM;
- adherence_quick: a fresh measurement on a small fixed held-out prompt set (checker CNN);
- adherence_full: the full evaluation figures from training/art_model/results.json, if present;
- v2: the offline model v2 (latent, emoji subjects; `ART_V2_EXPORT` or the bundled art-offline
  folder): the judge's figures of its newest evaluation (training/art_latent/results.json:
  `subject_top5_seen`, `subject_top5_heldout`, `style_accuracy`, `category_accuracy`, `fid_style`
  with the copy-baseline and v1 figures) and `s_per_image` measured now, side by side with v1 at its
  native 32 px (25 DDIM steps, CFG, same thread count), with the ratio.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import torch
from diffusers import DDIMScheduler, DDPMScheduler

from pipelines.art.pixel_diffusion import PixelDiffusionPipeline

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = REPO / "assets" / "models" / "art-offline-shapes"
RESULTS = REPO / "training" / "art_model" / "results.json"
V2_RESULTS = REPO / "training" / "art_latent" / "results.json"
V2_BUNDLED = REPO / "assets" / "models" / "art-offline"
PROMPT = "two yellow triangles at sunset"  # a held-out colour/shape combination


def _time_call(pipe: PixelDiffusionPipeline, steps: int, repeats: int) -> float:
    best = float("inf")
    for r in range(repeats):
        t0 = time.perf_counter()
        pipe(
            PROMPT,
            num_inference_steps=steps,
            generator=torch.Generator().manual_seed(r),
            output_type="pt",
            upscale=1,
        )
        best = min(best, time.perf_counter() - t0)
    return best


def run() -> list[dict]:
    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    pipe = PixelDiffusionPipeline.from_pretrained(MODEL_DIR)
    pipe.set_progress_bar_config(disable=True)
    pipe(PROMPT, num_inference_steps=2, output_type="pt")  # warm-up: loads MiniLM, caches the prompt
    size = pipe.native_size
    step_file = MODEL_DIR / "training_step.json"
    step = json.loads(step_file.read_text())["step"] if step_file.exists() else None
    rows: list[dict] = []

    # 1. 25 DDIM steps at native resolution
    ddim = _time_call(pipe, 25, repeats=3)
    rows.append(
        {
            "name": "ddim_25_steps",
            "seconds": round(ddim, 4),
            "seconds_per_step": round(ddim / 25, 5),
            "resolution": f"{size}x{size}",
            "threads": threads,
            "training_step": step,
        }
    )

    # 2. the same model with 250 DDPM steps (ancestral sampling on the same trained schedule)
    ddim_scheduler = pipe.scheduler
    pipe.scheduler = DDPMScheduler.from_config(ddim_scheduler.config)
    try:
        ddpm = _time_call(pipe, 250, repeats=1)
    finally:
        pipe.scheduler = DDIMScheduler.from_config(ddim_scheduler.config)
    rows.append(
        {
            "name": "ddim25_vs_ddpm250",
            "ddim_25_s": round(ddim, 4),
            "ddpm_250_s": round(ddpm, 4),
            "ratio": round(ddim / ddpm, 4),
        }
    )

    # 3. adherence on a small fixed held-out prompt set, measured now
    from training.art_model import checker as checker_mod
    from training.art_model.evaluate import EvalConfig, evaluate

    t0 = time.perf_counter()
    quick = evaluate(MODEL_DIR, EvalConfig(n_heldout=48), checker_mod.load_checker(), ("heldout",))
    held = quick.adherence["heldout"]
    rows.append(
        {
            "name": "adherence_quick",
            "prompts": held.n,
            "colour": held.colour,
            "shape": held.shape,
            "count": held.count,
            "position": held.position,
            "background": held.background,
            "fid_heldout": round(quick.fid_heldout or float("nan"), 3),
            "seconds": round(time.perf_counter() - t0, 2),
        }
    )

    # 4. the full evaluation (training/art_model/evaluate.py --write), if it has been run
    if RESULTS.exists():
        full = json.loads(RESULTS.read_text())
        row: dict = {"name": "adherence_full", "source": str(RESULTS.relative_to(REPO))}
        for key in ("latest", "early"):
            if key in full:
                row[f"{key}_step"] = full[key]["step"]
                row[f"{key}_fid_heldout"] = full[key]["fid_heldout"]
                for set_name, adherence in full[key]["adherence"].items():
                    for attr in ("colour", "shape", "count", "position", "background"):
                        row[f"{key}_{set_name}_{attr}"] = adherence[attr]
        row["fid_real_vs_real"] = full.get("fid_real_vs_real")
        rows.append(row)
    else:
        logger.warning("no %s yet: run python -m training.art_model.evaluate --write", RESULTS)
    rows += v2_rows(pipe)
    return rows


def v2_rows(v1: PixelDiffusionPipeline) -> list[dict]:
    """The v2 model's judge figures (newest evaluation) and its speed against v1, timed in turns."""
    from pipelines.art.latent_diffusion import LatentArtPipeline

    export = Path(os.environ.get("ART_V2_EXPORT", V2_BUNDLED))
    if not (export / "model_index.json").exists():
        return [{"name": "v2", "skipped": f"no v2 model at {export} (set ART_V2_EXPORT)"}]
    v2 = LatentArtPipeline.from_pretrained(export)
    v2.set_progress_bar_config(disable=True)
    step_file = export / "training_step.json"
    row: dict = {"name": "v2", "export": str(export)}
    row["training_step"] = json.loads(step_file.read_text())["step"] if step_file.exists() else None
    # 1. speed: 25 DDIM steps with CFG, v1 and v2 alternately so box noise hits both
    prompt = "a red apple, food and drink, flat twemoji style"
    for pipe in (v1, v2):
        pipe(prompt, num_inference_steps=2, output_type="pt")  # warm-up
    times: dict[str, list[float]] = {"v1": [], "v2": []}
    for r in range(3):
        for name, pipe in (("v1", v1), ("v2", v2)):
            t0 = time.perf_counter()
            pipe(prompt, num_inference_steps=25, generator=torch.Generator().manual_seed(r), output_type="pt")
            times[name].append(time.perf_counter() - t0)
    row["s_per_image"] = round(min(times["v2"]), 3)
    row["v1_s_per_image_32px"] = round(min(times["v1"]), 3)
    row["s_per_image_ratio_v2_over_v1"] = round(min(times["v2"]) / min(times["v1"]), 3)
    # 2. adherence: the judge needs the npm dataset and its checkpoint, so it runs in training;
    # the newest evaluation of this training step (or the newest of all) is reported here
    if V2_RESULTS.exists():
        runs = json.loads(V2_RESULTS.read_text())
        same = [r for r in runs if r.get("step") == row["training_step"]]
        latest = (same or runs)[-1]
        row["evaluated_step"] = latest.get("step")
        for key in ("subject_top5_seen", "subject_top5_heldout", "style_accuracy", "category_accuracy"):
            row[key] = latest.get(key)
        row["fid_style"] = latest.get("fid_style")
        row["fid_floor_real_vs_augmented"] = latest.get("fid_floor_real_vs_augmented")
        row["fid_style_copy_baseline"] = latest.get("copy_baseline", {}).get("fid_style")
        row["fid_style_v1"] = latest.get("v1", {}).get("fid_style")
    return [row]
