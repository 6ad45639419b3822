"""int8 quantization on tiny real models: GPT-2 (Conv1D), Llama, and the tiny SD pipeline per tier."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from pipelines.memory.plan import (
    apply_plan_to_causal_lm,
    apply_plan_to_diffusers,
    load_quantization_kwargs,
    tied_output_head,
)
from pipelines.memory.quantize import (
    Int8Linear,
    cuda_load_config,
    module_bytes,
    quantize_int8,
    quantized_layers,
)
from pipelines.testing import tiny_gpt2, tiny_sd_components
from studio.device import MemoryInfo, make_plan

MEMORY = MemoryInfo(4, 2, 4, 2)


def tiny_llama(seed: int = 0) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=256,
        hidden_size=64,  # width
        intermediate_size=192,  # MLP channels (the pruning target)
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config).eval().requires_grad_(False)


def logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("backend", ["int8pack", "torchao"])
def test_gpt2_conv1d_is_converted_then_quantized(backend: str) -> None:
    model = tiny_gpt2(400).requires_grad_(False)
    ids = torch.randint(3, 400, (1, 16), generator=torch.Generator().manual_seed(0))
    ref = logits(model, ids)
    report = quantize_int8(model, backend=backend)
    # 2 layers x (c_attn, attn.c_proj, c_fc, mlp.c_proj) Conv1D -> Linear, + lm_head
    assert report.converted_conv1d == 8 and report.modules == 9
    assert not any(type(m).__name__ == "Conv1D" for m in model.modules())
    assert len(quantized_layers(model)) == 9
    out = logits(model, ids)
    assert torch.corrcoef(torch.stack([out.flatten(), ref.flatten()]))[0, 1] > 0.99
    generated = model.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=0)
    assert generated.shape == (1, 20)


def test_llama_int8pack_shrinks_and_stays_close() -> None:
    model = tiny_llama()
    ids = torch.randint(3, 256, (1, 24), generator=torch.Generator().manual_seed(1))
    ref = logits(model, ids)
    before = module_bytes(model)
    report = quantize_int8(model, backend="int8pack")
    # 2 layers x 7 projections + lm_head, all now Int8Linear with int8 buffers
    assert report.modules == 15 and report.bytes_before == before
    layer = model.model.layers[0].mlp.gate_proj
    assert isinstance(layer, Int8Linear) and layer.qweight.dtype == torch.int8
    assert report.bytes_after == module_bytes(model) < before
    # the 2x7 projections went from 4 to ~1 byte per weight (lm_head is a new int8 copy of the tied table)
    assert (logits(model, ids) - ref).abs().max() < 0.05 * ref.abs().max()
    assert (logits(model, ids).argmax(-1) == ref.argmax(-1)).float().mean() > 0.9


def test_torchao_backend_uses_torchao_tensors() -> None:
    model = tiny_llama()
    quantize_int8(model, backend="torchao")
    assert type(model.model.layers[0].self_attn.q_proj.weight).__name__ == "Int8Tensor"
    with pytest.raises(ValueError, match="backend"):
        quantize_int8(tiny_llama(), backend="int3")


def test_causal_lm_tiers() -> None:
    high, low, minimal = (make_plan("cpu", MEMORY, t) for t in ("high", "low", "minimal"))
    assert apply_plan_to_causal_lm(tiny_llama(), high) == []
    model = tiny_llama()
    applied = apply_plan_to_causal_lm(model, low)
    assert len(applied) == 1 and "int8" in applied[0] and quantized_layers(model)
    # the tied output head stays fp32 and still shares the embedding's weight
    assert "lm_head kept fp32 (tied to the embedding)" in applied[0] and "lm_head" not in quantized_layers(
        model
    )
    assert model.lm_head.weight is model.get_input_embeddings().weight
    untied = tiny_llama()
    untied.lm_head.weight = torch.nn.Parameter(untied.lm_head.weight.clone())  # its own weight: int8 too
    assert tied_output_head(untied) is None and tied_output_head(model) == "lm_head"
    assert "kept fp32" not in apply_plan_to_causal_lm(untied, low)[0]
    assert "lm_head" in quantized_layers(untied)
    model = tiny_llama()
    applied = apply_plan_to_causal_lm(model, minimal)
    assert "prun" in applied[0] and "int8" in applied[1] and quantized_layers(model)


def test_diffusers_tiers_on_the_tiny_sd() -> None:
    from diffusers import StableDiffusionPipeline
    from diffusers.models.attention_processor import SlicedAttnProcessor

    def pipe_at(tier: str) -> tuple[object, list[str]]:
        pipe = StableDiffusionPipeline(**tiny_sd_components(0))
        pipe.set_progress_bar_config(disable=True)
        return pipe, apply_plan_to_diffusers(pipe, make_plan("cpu", MEMORY, tier))

    def image(pipe: object) -> np.ndarray:
        out = pipe(
            "a red circle",
            num_inference_steps=4,
            generator=torch.Generator().manual_seed(0),
            output_type="np",
        )
        return out.images[0]

    high, applied_high = pipe_at("high")
    assert applied_high == ["cpu float32"] and not high.vae.use_tiling
    normal, applied_normal = pipe_at("normal")
    assert "VAE tiling" in applied_normal and normal.vae.use_tiling and not quantized_layers(normal.unet)
    low, applied_low = pipe_at("low")
    assert low.vae.use_tiling and "attention slicing" in applied_low
    assert all(isinstance(p, SlicedAttnProcessor) for p in low.unet.attn_processors.values())
    # the UNet's attention/feed-forward Linears and the CLIP encoder's are int8; convolutions stay
    assert any(name.endswith("attn1.to_q") for name in quantized_layers(low.unet))
    assert quantized_layers(low.text_encoder)
    assert isinstance(low.unet.conv_in, torch.nn.Conv2d)
    assert any(line.startswith("unet int8") for line in applied_low)
    ref, got = image(high), image(low)
    mse = float(np.mean((ref - got) ** 2))
    psnr = 10 * np.log10(1.0 / max(mse, 1e-12))
    assert got.shape == ref.shape and psnr > 25, psnr


def test_cuda_configs_and_the_fallback() -> None:
    from diffusers import PipelineQuantizationConfig
    from transformers import BitsAndBytesConfig

    # this machine: no GPU -> no config, and the reason says so
    cpu = cuda_load_config("cpu", "diffusers")
    assert cpu.config is None and "CUDA" in cpu.reason and cpu.kwargs() == {}
    assert load_quantization_kwargs(make_plan("cpu", MEMORY, "low"), "diffusers") == {}
    # a simulated GPU without bitsandbytes installed
    missing = cuda_load_config("cuda", "transformers", cuda_available=True, backend_available=False)
    assert missing.config is None and "bitsandbytes" in missing.reason
    # a simulated GPU with it: the configs diffusers/transformers would receive
    pipe8 = cuda_load_config("cuda", "diffusers", bits=8, cuda_available=True, backend_available=True)
    assert isinstance(pipe8.config, PipelineQuantizationConfig)
    assert pipe8.config.quant_backend == "bitsandbytes_8bit" and pipe8.config.components_to_quantize == [
        "unet",
        "text_encoder",
    ]
    lm4 = cuda_load_config("cuda:0", "transformers", bits=4, cuda_available=True, backend_available=True)
    assert isinstance(lm4.config, BitsAndBytesConfig) and lm4.config.load_in_4bit
    assert lm4.config.bnb_4bit_quant_type == "nf4" and "quantization_config" in lm4.kwargs()
    with pytest.raises(ValueError):
        cuda_load_config("cuda", "diffusers", bits=3, cuda_available=True, backend_available=True)


def test_accelerator_plans_do_not_quantize_post_load() -> None:
    model = tiny_llama()
    applied = apply_plan_to_causal_lm(copy.deepcopy(model), make_plan("cuda", MEMORY, "low"))
    assert "bitsandbytes" in applied[0] and not quantized_layers(model)


def test_writing_registry_quantizes_through_the_hook(tmp_path) -> None:
    from pipelines.writing.models import DEBUG_ID, register_writing_models
    from studio.registry import ModelRegistry

    registry = ModelRegistry(lambda: make_plan("cpu", MEMORY, "low"), offline=True)
    register_writing_models(registry, tmp_path, quantizer=apply_plan_to_causal_lm)
    loaded = registry.load(DEBUG_ID, "writing")
    assert quantized_layers(loaded.model.model) and any("int8" in a for a in loaded.model.applied)


def test_vae_upcast_for_half_precision_on_mps() -> None:
    """The MPS fp16 black-image guard, checked on CPU in fp16: fp32 VAE, txt2img and img2img run."""
    from diffusers import AutoPipelineForImage2Image, StableDiffusionPipeline
    from PIL import Image

    from pipelines.memory.plan import upcast_vae

    pipe = StableDiffusionPipeline(**tiny_sd_components(0)).to(torch.float16)
    pipe.set_progress_bar_config(disable=True)
    assert upcast_vae(pipe) and pipe.vae.dtype == torch.float32 and pipe.unet.dtype == torch.float16
    g = torch.Generator().manual_seed(0)
    image = pipe("a red circle", num_inference_steps=2, generator=g, output_type="np").images[0]
    assert np.isfinite(image).all() and image.std() > 0
    i2i = AutoPipelineForImage2Image.from_pipe(pipe)
    red = Image.new("RGB", (64, 64), "red")
    out = i2i("a red circle", image=red, num_inference_steps=4, strength=0.5, output_type="np").images[0]
    assert out.shape == (64, 64, 3) and np.isfinite(out).all()
