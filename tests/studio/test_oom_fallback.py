"""Out-of-memory fallback: a load or a generation that runs out of memory retries one tier lower."""

from __future__ import annotations

import pytest
import torch

from studio.device import MemoryInfo, Tier, make_plan
from studio.registry import ModelEntry, ModelLoadError, ModelRegistry, Source, is_oom

PLAN = make_plan("cuda", MemoryInfo(8, 7.5, 32, 16))  # a simulated 8 GB card: NORMAL


def oom_registry(fail_at: set[Tier], calls: list[Tier]) -> ModelRegistry:
    registry = ModelRegistry(lambda: PLAN)

    def loader(entry: ModelEntry, plan) -> dict:
        calls.append(plan.tier)
        if plan.tier in fail_at:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return {"tier": plan.tier, "actions": plan.actions}

    registry.register(ModelEntry("sd", "art", Source.BUNDLED, loader, label="SD"), default=True)
    return registry


def test_plan_is_normal_on_8gb() -> None:
    assert PLAN.tier is Tier.NORMAL


def test_oom_during_load_retries_one_tier_lower() -> None:
    calls: list[Tier] = []
    registry = oom_registry({Tier.NORMAL}, calls)
    loaded = registry.load("sd", "art")
    assert calls == [Tier.NORMAL, Tier.LOW] and loaded.tier is Tier.LOW
    assert loaded.model["actions"].int8_weights and registry.tier_of("sd") is Tier.LOW
    assert (
        "Out of memory" in loaded.notice and "tier low" in loaded.notice and "int8 weights" in loaded.notice
    )
    assert registry.load("sd", "art").notice == ""  # reused at its lowered tier, no second load
    assert calls == [Tier.NORMAL, Tier.LOW]


def test_oom_retries_only_once() -> None:
    calls: list[Tier] = []
    registry = oom_registry({Tier.NORMAL, Tier.LOW}, calls)
    with pytest.raises(ModelLoadError, match="out of memory"):
        registry.load("sd", "art")
    assert calls == [Tier.NORMAL, Tier.LOW]


def test_reload_lower_after_a_generation_oom() -> None:
    calls: list[Tier] = []
    registry = oom_registry(set(), calls)
    registry.load("sd", "art")
    again = registry.reload_lower("sd", "art")
    assert (
        again.tier is Tier.LOW
        and again.model["tier"] is Tier.LOW
        and "retrying once at tier low" in again.notice
    )
    registry.reload_lower("sd", "art")
    with pytest.raises(ModelLoadError, match="even at the minimal tier"):
        registry.reload_lower("sd", "art")
    assert calls == [Tier.NORMAL, Tier.LOW, Tier.MINIMAL]


def test_tier_override_applies_to_later_loads_and_unloads() -> None:
    calls: list[Tier] = []
    registry = oom_registry(set(), calls)
    registry.load("sd", "art")
    registry.set_tier("minimal")
    assert registry.loaded_ids() == [] and registry.plan.tier is Tier.MINIMAL
    assert registry.load("sd", "art").tier is Tier.MINIMAL
    registry.set_tier("auto")
    assert registry.plan.tier is Tier.NORMAL and registry.loaded_ids() == []


def test_is_oom() -> None:
    assert is_oom(torch.OutOfMemoryError("x"))
    assert is_oom(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB"))
    assert not is_oom(RuntimeError("shape mismatch")) and not is_oom(OSError("gone"))


def test_art_generation_oom_reloads_lower_and_finishes(ctx) -> None:
    """A tiny SD whose UNet raises OutOfMemoryError on its first forward: the image still comes out."""
    from pipelines.art.models import DEBUG_ID
    from pipelines.art.pipeline import ArtPipeline, ArtRequest
    from pipelines.memory.quantize import quantized_layers
    from studio.events import CancelToken, Finished, Notice

    ctx.registry.set_tier("normal")
    first = ctx.registry.load(DEBUG_ID, "art").model
    raised: list[bool] = []

    def run_out_of_memory(module: torch.nn.Module, args: tuple) -> None:
        if not raised:
            raised.append(True)
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    first.pipe.unet.register_forward_pre_hook(run_out_of_memory)
    request = ArtRequest("a red circle", model_id=DEBUG_ID, steps=3, seed=5)
    events = list(ArtPipeline(ctx.registry, ctx.store).generate(request, CancelToken()))
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert raised and any("Out of memory" in n and "tier low" in n for n in notices)
    assert isinstance(events[-1], Finished) and len(events[-1].result.images) == 1
    reloaded = ctx.registry.load(DEBUG_ID, "art").model
    assert reloaded is not first and ctx.registry.tier_of(DEBUG_ID) is Tier.LOW
    assert quantized_layers(reloaded.pipe.unet) and "attention slicing" in reloaded.applied
