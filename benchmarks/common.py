"""Helpers shared by benchmarks: a throwaway studio context, interleaved timing."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from studio.context import StudioContext
from studio.settings import Settings


def temp_context() -> StudioContext:
    """A context on temp dirs with the art models registered (benchmarks import app-free code only)."""
    from pipelines.art.models import register_art_models

    root = Path(tempfile.mkdtemp(prefix="studio-bench-"))
    settings = Settings(output_dir=root / "outputs", data_dir=root / "data", offline=True, threads=1)
    ctx = StudioContext.create(settings)
    register_art_models(ctx.registry, settings.data_dir)
    return ctx


def interleaved(
    variants: dict[str, Callable[[], object]], rounds: int = 5, warmup: int = 1
) -> dict[str, float]:
    """Median seconds per variant, running the variants round-robin so machine noise hits all alike."""
    torch.set_num_threads(1)
    for _ in range(warmup):
        for fn in variants.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in samples.items()}
