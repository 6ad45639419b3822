"""Structured MLP pruning on tiny real Llama and GPT-2 models: smaller tensors, still generating."""

from __future__ import annotations

import pytest
import torch

from pipelines.memory.prune import (
    channel_scores,
    cut,
    keep_indices,
    mlp_blocks,
    prune_if_it_pays,
    prune_mlp,
    simulated,
)
from pipelines.memory.quantize import module_bytes, quantize_int8
from pipelines.testing import tiny_gpt2
from tests.pipelines.memory.test_quantize import tiny_llama

IDS = torch.randint(3, 256, (1, 32), generator=torch.Generator().manual_seed(2))


def test_llama_channels_are_really_removed() -> None:
    model = tiny_llama()
    before = module_bytes(model)
    report = prune_mlp(model, 0.5, IDS)
    mlp = model.model.layers[0].mlp
    # 192 -> 96 channels: gate/up lose rows, down loses columns, the config follows
    assert mlp.gate_proj.weight.shape == (96, 64) and mlp.up_proj.weight.shape == (96, 64)
    assert mlp.down_proj.weight.shape == (64, 96) and model.config.intermediate_size == 96
    assert report.channels_before == 192 and report.channels_after == 96 and report.layers == 2
    # 2 layers x 3 x 96 x 64 fp32 weights gone, exactly as reported
    assert before - report.bytes_after == 2 * 3 * 96 * 64 * 4 == report.bytes_before - module_bytes(model)
    out = model.generate(IDS[:, :8], max_new_tokens=6, do_sample=False, pad_token_id=2)
    assert out.shape == (1, 14)


def test_simulated_cut_equals_the_real_cut() -> None:
    model = tiny_llama()
    keep = keep_indices(channel_scores(model, IDS), 0.25)
    with torch.no_grad(), simulated(model, keep):
        masked = model(IDS).logits
    cut(model, keep)
    with torch.no_grad():
        real = model(IDS).logits
    torch.testing.assert_close(masked, real, rtol=1e-4, atol=1e-4)


def test_gpt2_conv1d_prune_saves_and_reloads(tmp_path) -> None:
    from transformers import GPT2LMHeadModel

    model = tiny_gpt2(400).requires_grad_(False)
    ids = IDS % 400
    report = prune_mlp(model, 0.25)  # magnitude ranking: no text needed
    assert report.method == "magnitude" and report.channels_after == 96  # 4*32=128 -> 96
    assert model.transformer.h[0].mlp.c_fc.weight.shape == (32, 96)  # Conv1D is [in, out]
    assert model.transformer.h[0].mlp.c_proj.weight.shape == (96, 32) and model.config.n_inner == 96
    model.save_pretrained(tmp_path)
    reloaded = GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, model(ids).logits)


def test_prune_then_int8_and_not_the_other_way() -> None:
    model = tiny_llama()
    prune_mlp(model, 0.5, IDS)
    pruned = module_bytes(model)
    report = quantize_int8(model, backend="int8pack")
    assert report.bytes_after < pruned and model.generate(IDS[:, :4], max_new_tokens=3).shape == (1, 7)
    with pytest.raises(TypeError, match="prune before quantizing"):
        mlp_blocks(model)


def test_prune_if_it_pays_decides_from_agreement() -> None:
    refused = prune_if_it_pays(tiny_llama(), 0.5, min_agreement=1.01)
    assert refused.applied is None and "not applied" in refused.reason and 0 <= refused.agreement <= 1
    model = tiny_llama()
    accepted = prune_if_it_pays(model, 0.5, min_agreement=0.0)
    assert accepted.applied is not None and model.config.intermediate_size == 96
