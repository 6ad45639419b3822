"""Device and memory policy: which device, which dtype, which memory tier.

In the spirit of ComfyUI's VRAMState: a tier is picked from free memory by small named decision
functions, and each tier maps to a fixed set of actions the pipelines apply. Nothing is probed at
import time; `plan_for(settings)` probes once, lazily, and caches the result.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from enum import StrEnum

import psutil
import torch

from studio.settings import Settings

log = logging.getLogger(__name__)

GB = 1024**3


class Tier(StrEnum):
    HIGH = "high"  # everything resident, no memory savers
    NORMAL = "normal"  # VAE tiling for large images
    LOW = "low"  # + attention slicing, model CPU offload (accelerators), int8 weights
    MINIMAL = "minimal"  # + sequential offload (accelerators), structured pruning where it pays

    def lower(self) -> Tier:
        """The next tier down, for an out-of-memory retry."""
        order = list(Tier)
        return order[min(order.index(self) + 1, len(order) - 1)]


@dataclass(frozen=True)
class TierActions:
    half_precision: bool  # fp16 on CUDA/MPS (never on CPU)
    attention_slicing: bool  # compute attention in slices: less peak memory, a little slower
    vae_tiling: bool  # decode/encode the VAE in tiles, so large images don't OOM at the end
    model_cpu_offload: bool  # whole-model offload between steps (accelerators only)
    sequential_offload: bool  # submodule offload, slowest, least memory (accelerators only)
    int8_weights: bool  # int8 weight-only quantization of Linear layers
    prune: bool  # structured pruning, only where a measurement shows a gain


TIER_ACTIONS: dict[Tier, TierActions] = {
    Tier.HIGH: TierActions(True, False, False, False, False, False, False),
    Tier.NORMAL: TierActions(True, False, True, False, False, False, False),
    Tier.LOW: TierActions(True, True, True, True, False, True, False),
    Tier.MINIMAL: TierActions(True, True, True, False, True, True, True),
}


@dataclass(frozen=True)
class MemoryInfo:
    device_total_gb: float  # accelerator memory (RAM for CPU)
    device_free_gb: float  # free accelerator memory (available RAM for CPU)
    ram_total_gb: float
    ram_free_gb: float


@dataclass(frozen=True)
class DevicePlan:
    device: str  # "cpu", "cuda", "cuda:1", "mps"
    dtype: torch.dtype  # weights/activations dtype for the big models
    tier: Tier
    memory: MemoryInfo
    reason: str  # one line: why this plan

    @property
    def actions(self) -> TierActions:
        return TIER_ACTIONS[self.tier]

    @property
    def is_accelerator(self) -> bool:
        return not self.device.startswith("cpu")

    def describe(self) -> str:
        dtype = str(self.dtype).replace("torch.", "")
        return (
            f"{self.device} · {dtype} · tier {self.tier.value} · "
            f"free {self.memory.device_free_gb:.1f}/{self.memory.device_total_gb:.1f} GB ({self.reason})"
        )


def probe_device(requested: str = "auto") -> str:
    """CUDA, then MPS, then CPU. An explicit request is honoured if that device exists."""
    requested = requested.strip().lower() or "auto"
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"Device {requested!r} requested but CUDA is not available")
    if requested == "mps" and not torch.backends.mps.is_available():
        raise ValueError("Device 'mps' requested but MPS is not available")
    if requested.split(":")[0] not in {"cpu", "cuda", "mps"}:
        raise ValueError(f"Unknown device {requested!r}; use auto, cpu, cuda, cuda:N or mps")
    return requested


def probe_memory(device: str) -> MemoryInfo:
    """Free and total memory of the device, plus system RAM (psutil)."""
    vm = psutil.virtual_memory()
    ram_total, ram_free = vm.total / GB, vm.available / GB
    if device.startswith("cuda"):
        free, total = torch.cuda.mem_get_info(torch.device(device))
        return MemoryInfo(total / GB, free / GB, ram_total, ram_free)
    if device == "mps":
        # unified memory: the recommended working set is the practical budget
        budget = torch.mps.recommended_max_memory() / GB
        return MemoryInfo(budget, budget - torch.mps.current_allocated_memory() / GB, ram_total, ram_free)
    return MemoryInfo(ram_total, ram_free, ram_total, ram_free)


def choose_dtype(device: str) -> torch.dtype:
    """fp16 on accelerators (the SD checkpoints' native precision), fp32 on CPU."""
    return torch.float32 if device.startswith("cpu") else torch.float16


def choose_tier(device: str, memory: MemoryInfo) -> tuple[Tier, str]:
    """Pick a tier from the free memory of the device that will hold the weights."""
    free = memory.device_free_gb
    if device.startswith("cpu"):
        # CPU RAM: a 1.5 GB SD model plus activations fits comfortably above 8 GB
        thresholds = [(12, Tier.HIGH), (6, Tier.NORMAL), (3, Tier.LOW)]
    else:
        thresholds = [(12, Tier.HIGH), (6, Tier.NORMAL), (3.5, Tier.LOW)]
    for minimum, tier in thresholds:
        if free >= minimum:
            return tier, f"{free:.1f} GB free ≥ {minimum} GB"
    return Tier.MINIMAL, f"only {free:.1f} GB free"


def make_plan(device: str, memory: MemoryInfo, tier: str = "auto") -> DevicePlan:
    """Pure decision: device + memory (+ an optional tier override) -> plan. Testable with fakes."""
    if tier and tier != "auto":
        chosen, reason = Tier(tier.lower()), "tier set by user"
    else:
        chosen, reason = choose_tier(device, memory)
    return DevicePlan(device, choose_dtype(device), chosen, memory, reason)


@functools.lru_cache(maxsize=8)
def _cached_plan(device: str, tier: str) -> DevicePlan:
    resolved = probe_device(device)
    plan = make_plan(resolved, probe_memory(resolved), tier)
    log.info("device plan: %s", plan.describe())
    return plan


def plan_for(settings: Settings) -> DevicePlan:
    """The plan in force for these settings; probes hardware on first call only."""
    return _cached_plan(settings.device, settings.tier)


def apply_threads(threads: int) -> None:
    """torch intra-op threads; on a shared 2-core box 1 thread beat 2 by ~10x."""
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
