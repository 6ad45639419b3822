"""Tier selection on simulated devices, and what each tier turns on there."""

from __future__ import annotations

import pytest
import torch

from studio.device import MemoryInfo, Tier, make_plan


@pytest.mark.parametrize(
    ("device", "total_gb", "free_gb", "tier", "dtype"),
    [
        ("cuda", 4, 3.6, Tier.LOW, torch.float16),  # GTX 1650-class card, desktop using 0.4 GB
        ("cuda", 4, 3.0, Tier.MINIMAL, torch.float16),  # same card, a browser open
        ("cuda", 8, 7.6, Tier.NORMAL, torch.float16),
        ("cuda", 24, 23.2, Tier.HIGH, torch.float16),
        ("mps", 10.7, 10.2, Tier.NORMAL, torch.float16),  # 16 GB Mac: recommended working set
        ("cpu", 4, 2.1, Tier.MINIMAL, torch.float32),
        ("cpu", 24, 19.0, Tier.HIGH, torch.float32),
    ],
)
def test_plan_on_simulated_devices(device: str, total_gb: float, free_gb: float, tier: Tier, dtype) -> None:
    plan = make_plan(device, MemoryInfo(total_gb, free_gb, 32, 16))
    assert plan.tier is tier and plan.dtype == dtype
    actions = plan.actions
    # int8 from LOW down; offload only means something on accelerators (apply_plan checks is_accelerator)
    assert actions.int8_weights == (tier in (Tier.LOW, Tier.MINIMAL))
    assert actions.vae_tiling == (tier is not Tier.HIGH)
    assert plan.is_accelerator == (device != "cpu")
    assert tier.value in plan.describe()


def test_override_wins_over_memory() -> None:
    plan = make_plan("cuda", MemoryInfo(24, 23, 32, 16), tier="low")
    assert plan.tier is Tier.LOW and plan.reason == "tier set by user"
