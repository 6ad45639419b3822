"""Device plan decisions on simulated hardware (no probing needed)."""

from __future__ import annotations

import pytest
import torch

from studio.device import MemoryInfo, Tier, choose_tier, make_plan, plan_for, probe_device
from studio.settings import Settings


def mem(free_gb: float, total_gb: float = 24.0) -> MemoryInfo:
    return MemoryInfo(total_gb, free_gb, 32.0, 16.0)


@pytest.mark.parametrize(
    ("device", "free", "tier"),
    [
        ("cuda", 22.0, Tier.HIGH),
        ("cuda", 7.5, Tier.NORMAL),
        ("cuda", 3.8, Tier.LOW),
        ("cuda", 2.0, Tier.MINIMAL),
        ("mps", 16.0, Tier.HIGH),
        ("cpu", 20.0, Tier.HIGH),
        ("cpu", 3.5, Tier.LOW),
        ("cpu", 1.0, Tier.MINIMAL),
    ],
)
def test_tier_from_free_memory(device: str, free: float, tier: Tier) -> None:
    assert choose_tier(device, mem(free))[0] is tier


def test_dtype_and_actions() -> None:
    cuda = make_plan("cuda", mem(3.8, 4.0))
    assert cuda.dtype == torch.float16 and cuda.actions.model_cpu_offload and cuda.actions.attention_slicing
    cpu = make_plan("cpu", mem(20.0))
    assert cpu.dtype == torch.float32 and not cpu.is_accelerator
    assert make_plan("cpu", mem(20.0), tier="minimal").tier is Tier.MINIMAL


def test_override_and_lower_tier() -> None:
    assert Tier.HIGH.lower() is Tier.NORMAL and Tier.MINIMAL.lower() is Tier.MINIMAL
    with pytest.raises(ValueError):
        make_plan("cpu", mem(8), tier="enormous")


def test_probe_on_this_machine_is_lazy_and_cpu() -> None:
    assert probe_device("auto") in {"cpu", "cuda", "mps"}
    with pytest.raises(ValueError):
        probe_device("tpu")
    plan = plan_for(Settings(device="cpu"))
    assert plan.device == "cpu" and "tier" in plan.describe()
