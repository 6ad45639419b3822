"""Memory tiers in practice: int8 weight quantization, structured pruning, and applying a device plan."""

from pipelines.memory.plan import (
    apply_plan_to_causal_lm,
    apply_plan_to_diffusers,
    load_quantization_kwargs,
    loaded_model_rows,
)
from pipelines.memory.prune import prune_if_it_pays
from pipelines.memory.quantize import QuantReport, quantize_int8

__all__ = [
    "QuantReport",
    "apply_plan_to_causal_lm",
    "apply_plan_to_diffusers",
    "load_quantization_kwargs",
    "loaded_model_rows",
    "prune_if_it_pays",
    "quantize_int8",
]
