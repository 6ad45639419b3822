"""Apply a DevicePlan's tier actions to a loaded diffusers pipeline or causal LM, and say what was applied."""

from __future__ import annotations

import logging
from typing import Any

from studio.device import DevicePlan, Tier

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
    # MPS in fp16: the VAE decode is the classic black-image (NaN) case, so it runs in fp32
    if plan.device == "mps" and vae is not None and upcast_vae(pipe):
        applied.append("VAE upcast to fp32 (MPS)")
    # int8 weights (LOW/MINIMAL) on CPU: the UNet's and text encoders' Linear layers; on accelerators
    # 8-bit comes from bitsandbytes at load time (pipelines.quantize.cuda_load_config) instead
    if actions.int8_weights:
        applied.extend(quantize_pipeline_components(pipe, plan))
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


QUANTIZED_COMPONENTS = ("unet", "transformer", "text_encoder", "text_encoder_2")
# MINIMAL tier: share of each MLP's channels an LM loses, if the load-time check accepts it
MINIMAL_PRUNE_FRACTION = 0.1
MIN_PRUNE_AGREEMENT = 0.9  # next-token agreement the simulated cut must keep


def quantize_pipeline_components(pipe: Any, plan: DevicePlan) -> list[str]:
    """int8 the Linear layers of each big component (CPU only); one line per component for the UI."""
    import torch

    from pipelines.memory.quantize import quantize_int8

    if plan.is_accelerator:
        return ["int8 weights: not applied post-load on accelerators (8-bit loads through bitsandbytes)"]
    applied = []
    components = getattr(pipe, "components", {})  # registered modules only: no lazy loaders fire
    for name in QUANTIZED_COMPONENTS:
        module = components.get(name)
        if isinstance(module, torch.nn.Module):
            report = quantize_int8(module)
            if report.modules:
                applied.append(f"{name} {report.describe()}")
    return applied


def tied_output_head(model: Any) -> str | None:
    """The name of the LM's output head when it shares its weight with the input embedding, else None.

    Such a head stays fp32 under int8: the fp32 weight is kept for the embedding anyway (an int8
    copy adds memory instead of saving it), and the logits are where int8 costs agreement: on
    SmolLM2-135M, top-1 agreement with fp32 on the 1,719 held-out positions goes 0.943 -> 0.952,
    the model 237 -> 210 MB (docs/WRITING_ENGINES.md).
    """
    get_out = getattr(model, "get_output_embeddings", None)
    get_in = getattr(model, "get_input_embeddings", None)
    head, embedding = (get_out() if get_out else None), (get_in() if get_in else None)
    if head is None or embedding is None or head.weight is not embedding.weight:
        return None
    return next((name for name, module in model.named_modules() if module is head), None)


def apply_plan_to_causal_lm(model: Any, plan: DevicePlan) -> list[str]:
    """LOW: int8 weights. MINIMAL: structured MLP pruning if it passes its check, then int8.

    Matches the writing loader's quantizer hook signature (model, plan) -> applied actions.
    """
    from pipelines.memory.prune import prune_if_it_pays
    from pipelines.memory.quantize import DEFAULT_SKIP, quantize_int8

    actions, applied = plan.actions, []
    model.eval()
    # 1. prune first: the cut slices float weights, int8 comes after
    if actions.prune and plan.tier is Tier.MINIMAL:
        decision = prune_if_it_pays(model, MINIMAL_PRUNE_FRACTION, MIN_PRUNE_AGREEMENT)
        applied.append(decision.reason)
    # 2. int8 weight-only Linear layers (GPT-2 Conv1D converted first); CPU kernels, torchao elsewhere
    if actions.int8_weights:
        if plan.is_accelerator:
            applied.append(
                "int8 weights: load with bitsandbytes on CUDA (pipelines.quantize.cuda_load_config)"
            )
        else:
            head = tied_output_head(model)
            skip = (*DEFAULT_SKIP, head.rsplit(".", 1)[-1]) if head else DEFAULT_SKIP
            note = f"; {head} kept fp32 (tied to the embedding)" if head else ""
            applied.append(quantize_int8(model, skip=skip).describe() + note)
    log.info("applied plan to LM: %s", ", ".join(applied) or "nothing")
    return applied


def load_quantization_kwargs(plan: DevicePlan, family: str) -> dict[str, Any]:
    """from_pretrained kwargs for 8-bit bitsandbytes loading on CUDA at LOW/MINIMAL; {} elsewhere."""
    from pipelines.memory.quantize import cuda_load_config

    if not plan.actions.int8_weights:
        return {}
    choice = cuda_load_config(plan.device, family, bits=8)
    log.info("load-time quantization: %s", choice.reason)
    return choice.kwargs()


def loaded_model_rows(registry: Any) -> list[list[Any]]:
    """[id, tier, resident MB, what was applied] for each loaded model, for the UI's table."""
    from pipelines.memory.quantize import MB, object_bytes

    rows = []
    for model_id in registry.loaded_ids():
        obj = registry.peek(model_id)
        tier = registry.tier_of(model_id)
        applied = getattr(obj, "applied", ()) or ()
        rows.append(
            [model_id, tier.value if tier else "", round(object_bytes(obj) / MB, 1), "; ".join(applied)]
        )
    return rows


def upcast_vae(pipe: Any) -> bool:
    """Keep the VAE in fp32 under a half-precision pipeline: inputs are cast up, outputs back down.

    Hooks on the VAE's entry points (post_quant_conv/decoder for decode, encoder for img2img)
    cast whatever dtype the pipeline hands in to fp32; returns False when there is no VAE.
    """
    import torch

    vae = getattr(pipe, "vae", None)
    if vae is None or getattr(vae, "_studio_upcast", False):
        return vae is not None
    pipeline_dtype = vae.dtype
    vae.to(torch.float32)

    def to_fp32(_module: Any, args: tuple) -> tuple:
        return tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)

    def back_down(_module: Any, _args: tuple, output: Any) -> Any:
        return output.to(pipeline_dtype) if torch.is_tensor(output) else output

    for name in ("post_quant_conv", "decoder", "encoder", "quant_conv"):
        module = getattr(vae, name, None)
        if isinstance(module, torch.nn.Module):
            module.register_forward_pre_hook(to_fp32)
    # encoded latents go back to the UNet's dtype (img2img); decoded images stay fp32
    last_encode = getattr(vae, "quant_conv", None)
    if last_encode is None:
        last_encode = getattr(vae, "encoder", None)
    if isinstance(last_encode, torch.nn.Module):
        last_encode.register_forward_hook(back_down)
    vae._studio_upcast = True
    return True
