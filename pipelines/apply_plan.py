"""Apply a DevicePlan's tier actions to a loaded diffusers pipeline, and say what was applied."""

from __future__ import annotations

import logging

from studio.device import DevicePlan

log = logging.getLogger(__name__)


def apply_plan_to_diffusers(pipe: object, plan: DevicePlan) -> list[str]:
    """Move/configure `pipe` per the plan; returns human-readable actions for the UI."""
    actions = plan.actions
    applied: list[str] = []
    # 1. memory savers that work on any device
    if actions.attention_slicing and hasattr(pipe, "enable_attention_slicing"):
        pipe.enable_attention_slicing()
        applied.append("attention slicing")
    vae = getattr(pipe, "vae", None)
    if actions.vae_tiling and vae is not None and hasattr(vae, "enable_tiling"):
        vae.enable_tiling()  # diffusers 0.42: the pipeline-level method is gone
        applied.append("VAE tiling")
    # 2. placement: offload only on accelerators (diffusers raises on CPU)
    if plan.is_accelerator and actions.sequential_offload and hasattr(pipe, "enable_sequential_cpu_offload"):
        pipe.enable_sequential_cpu_offload(device=plan.device)
        applied.append("sequential CPU offload")
    elif plan.is_accelerator and actions.model_cpu_offload and hasattr(pipe, "enable_model_cpu_offload"):
        pipe.enable_model_cpu_offload(device=plan.device)
        applied.append("model CPU offload")
    else:
        pipe.to(plan.device)
    applied.insert(0, f"{plan.device} {str(plan.dtype).replace('torch.', '')}")
    log.info("applied plan: %s", ", ".join(applied))
    return applied
