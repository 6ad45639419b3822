"""Structured MLP-channel pruning that really shrinks tensors, for Llama-style and GPT-2 LMs.

Unstructured masks (`torch.nn.utils.prune`) keep the dense weight plus a mask: no memory saved.
Here whole intermediate channels of each MLP are removed:

    Llama:  h = act(gate(x)) * up(x);  y = down(h)   -> drop rows of gate/up, columns of down
    GPT-2:  h = act(c_fc(x));          y = c_proj(h) -> drop columns of c_fc (Conv1D is [in, out]), rows of c_proj

so the MLP weights (about 60% of SmolLM2-135M) get smaller in proportion. Channels are ranked
per layer by how much they contribute to the output: mean |h_j| over a calibration text times
||down[:, j]|| ("activation", Wanda-style), or the weight norms alone ("magnitude") when no text
is given. Every layer keeps the same count, so `config.intermediate_size` (n_inner) stays valid
for save/reload.

`prune_if_it_pays` decides at load time without a copy of the model: it first simulates the cut
with hooks that zero the dropped channels (same output as the pruned model), compares next-token
agreement with the full model on the model's own greedy text, and only then cuts for real.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from pipelines.memory.quantize import MB, module_bytes

log = logging.getLogger(__name__)

CALIBRATION_TEXT = (
    "The old lighthouse stood at the edge of the cliff, its lamp turning slowly through the fog. "
    "Every evening the keeper climbed the spiral stairs, trimmed the wick and wrote the weather in "
    "his book. Ships passed far out at sea, and none of them knew his name. In spring the gulls "
    "returned, and the village children came to ask him for stories about storms and shipwrecks. "
    "Write a short poem about the sea. Explain how a bicycle works in three clear paragraphs."
)
MULTIPLE = 8  # kept channel counts are rounded to a multiple of this (kernel-friendly shapes)


@dataclass(frozen=True)
class MLPBlock:
    """One MLP's prunable linear maps, in nn.Linear or Conv1D layout."""

    module: nn.Module  # the MLP module itself
    ups: tuple[nn.Module, ...]  # maps INTO the intermediate (gate_proj, up_proj | c_fc)
    down: nn.Module  # map OUT of the intermediate (down_proj | c_proj)

    @property
    def width(self) -> int:
        return _out_rows(self.ups[0]).shape[0]


@dataclass(frozen=True)
class PruneReport:
    method: str  # "activation" or "magnitude"
    fraction: float  # of MLP channels removed
    layers: int
    channels_before: int  # per layer
    channels_after: int
    bytes_before: int
    bytes_after: int

    @property
    def ratio(self) -> float:
        return self.bytes_before / max(1, self.bytes_after)

    def describe(self) -> str:
        return (
            f"pruned {self.fraction:.0%} of MLP channels ({self.method}): {self.layers} layers "
            f"{self.channels_before}→{self.channels_after}, "
            f"{self.bytes_before / MB:.1f} → {self.bytes_after / MB:.1f} MB"
        )


# -- finding MLPs, layout helpers -------------------------------------------------------------------


def _is_conv1d(m: nn.Module) -> bool:
    return type(m).__name__ == "Conv1D"


def _out_rows(m: nn.Module) -> torch.Tensor:
    """The weight with one row per OUTPUT feature ([out, in]), whatever the layout."""
    return m.weight.t() if _is_conv1d(m) else m.weight


def mlp_blocks(model: nn.Module) -> list[MLPBlock]:
    """Every Llama-style (gate/up/down) or GPT-2 (c_fc/c_proj) MLP in the model."""
    blocks = []
    for module in model.modules():
        children = dict(module.named_children())
        if {"gate_proj", "up_proj", "down_proj"} <= children.keys():
            blocks.append(
                MLPBlock(module, (children["gate_proj"], children["up_proj"]), children["down_proj"])
            )
        elif {"c_fc", "c_proj"} <= children.keys() and not {"c_attn"} & children.keys():
            blocks.append(MLPBlock(module, (children["c_fc"],), children["c_proj"]))
    for block in blocks:
        for layer in (*block.ups, block.down):
            if not (isinstance(layer, nn.Linear) or _is_conv1d(layer)):
                raise TypeError(f"prune before quantizing: found {type(layer).__name__} in an MLP")
    return blocks


def _down_in_cols(down: nn.Module) -> torch.Tensor:
    """The down map's weight as [out, intermediate]."""
    return down.weight.t() if _is_conv1d(down) else down.weight


# -- ranking ----------------------------------------------------------------------------------------


@torch.no_grad()
def channel_scores(model: nn.Module, input_ids: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Per MLP, a score per intermediate channel (higher = keep).

    With `input_ids`: mean |h_j| over the tokens x ||down[:, j]|| (the channel's average contribution
    to the output). Without: ||gate_j|| * ||up_j|| * ||down[:, j]|| (weights only).
    """
    blocks = mlp_blocks(model)
    down_norms = [_down_in_cols(b.down).float().norm(dim=0) for b in blocks]  # [intermediate]
    if input_ids is None:
        scores = []
        for block, dn in zip(blocks, down_norms, strict=True):
            s = dn.clone()
            for up in block.ups:
                s *= _out_rows(up).float().norm(dim=1)
            scores.append(s)
        return scores
    sums = [torch.zeros(b.width) for b in blocks]
    counts = [0]

    def hook_for(k: int):
        def hook(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            h = args[0].detach().float().reshape(-1, args[0].shape[-1])  # [tokens, intermediate]
            sums[k] += h.abs().sum(0).cpu()
            if k == 0:
                counts[0] += h.shape[0]

        return hook

    handles = [b.down.register_forward_pre_hook(hook_for(k)) for k, b in enumerate(blocks)]
    try:
        device = next(model.parameters()).device
        model(input_ids.to(device))
    finally:
        for handle in handles:
            handle.remove()
    return [(s / max(1, counts[0])) * dn.cpu() for s, dn in zip(sums, down_norms, strict=True)]


def keep_count(width: int, fraction: float) -> int:
    keep = round(width * (1.0 - fraction))
    if width >= 8 * MULTIPLE:
        keep = max(MULTIPLE, round(keep / MULTIPLE) * MULTIPLE)
    return max(1, min(width, keep))


def keep_indices(scores: list[torch.Tensor], fraction: float) -> list[torch.Tensor]:
    """The sorted channel indices each layer keeps (the same count in every layer)."""
    out = []
    for s in scores:
        k = keep_count(s.numel(), fraction)
        out.append(torch.topk(s, k).indices.sort().values)
    return out


# -- simulate (hooks) and cut (slicing) ----------------------------------------------------------------


@contextlib.contextmanager
def simulated(model: nn.Module, keep: list[torch.Tensor]) -> Iterator[None]:
    """Zero the dropped channels at the down map's input: the pruned model's output, no copy."""
    blocks = mlp_blocks(model)
    handles = []
    for block, idx in zip(blocks, keep, strict=True):
        mask = torch.zeros(block.width, dtype=torch.bool)
        mask[idx] = True

        def hook(
            _m: nn.Module, args: tuple[torch.Tensor, ...], mask: torch.Tensor = mask
        ) -> tuple[torch.Tensor]:
            return (args[0] * mask.to(args[0].device, args[0].dtype),)

        handles.append(block.down.register_forward_pre_hook(hook))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _slice_param(p: nn.Parameter, dim: int, idx: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(p.detach().index_select(dim, idx.to(p.device)).contiguous(), requires_grad=False)


@torch.no_grad()
def cut(model: nn.Module, keep: list[torch.Tensor], method: str = "activation") -> PruneReport:
    """Physically remove the dropped channels (new, smaller tensors) and update the config."""
    blocks = mlp_blocks(model)
    before, width = module_bytes(model), blocks[0].width if blocks else 0
    for block, idx in zip(blocks, keep, strict=True):
        # 1. maps into the intermediate: keep output features idx
        for up in block.ups:
            dim = 1 if _is_conv1d(up) else 0
            up.weight = _slice_param(up.weight, dim, idx)
            if up.bias is not None:
                up.bias = _slice_param(up.bias, 0, idx)
            if _is_conv1d(up):
                up.nf = idx.numel()
            else:
                up.out_features = idx.numel()
        # 2. map out of the intermediate: keep input features idx (its bias is per output: unchanged)
        down = block.down
        down.weight = _slice_param(down.weight, 0 if _is_conv1d(down) else 1, idx)
        if not _is_conv1d(down):
            down.in_features = idx.numel()
        if hasattr(block.module, "intermediate_size"):
            block.module.intermediate_size = idx.numel()
    kept = keep[0].numel() if keep else 0
    config = getattr(model, "config", None)
    if config is not None and blocks:
        if hasattr(config, "intermediate_size") and getattr(config, "model_type", "") != "gpt2":
            config.intermediate_size = kept
        if getattr(config, "model_type", "") == "gpt2":
            config.n_inner = kept
    report = PruneReport(
        method, 1 - kept / max(1, width), len(blocks), width, kept, before, module_bytes(model)
    )
    log.info("%s", report.describe())
    return report


def prune_mlp(model: nn.Module, fraction: float, input_ids: torch.Tensor | None = None) -> PruneReport:
    """Rank (activation when `input_ids` is given, else magnitude) and cut `fraction` of MLP channels."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    scores = channel_scores(model, input_ids)
    return cut(model, keep_indices(scores, fraction), "activation" if input_ids is not None else "magnitude")


# -- the load-time decision -------------------------------------------------------------------------


@dataclass(frozen=True)
class PruneDecision:
    applied: PruneReport | None
    fraction: float  # tried
    agreement: float  # next-token agreement of the simulated cut with the full model
    reason: str


@torch.no_grad()
def self_probe_ids(model: nn.Module, tokens: int = 48) -> torch.Tensor:
    """The model's own greedy text from its BOS token: a tokenizer-free probe of its behaviour."""
    config = model.config
    start = getattr(config, "bos_token_id", None)
    start = 0 if start is None else int(start)
    device = next(model.parameters()).device
    ids = torch.tensor([[start]], device=device)
    out = model.generate(
        ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, pad_token_id=start
    )
    return out


@torch.no_grad()
def next_token_agreement(model: nn.Module, ids: torch.Tensor, reference: torch.Tensor) -> float:
    """Share of positions where the model's top-1 next token equals `reference`'s."""
    return (model(ids).logits.argmax(-1) == reference).float().mean().item()


def prune_if_it_pays(
    model: nn.Module,
    fraction: float,
    min_agreement: float = 0.9,
    calibration_ids: torch.Tensor | None = None,
) -> PruneDecision:
    """Cut `fraction` of MLP channels only if the simulated cut keeps ≥ min_agreement of next tokens."""
    if not mlp_blocks(model):
        return PruneDecision(None, fraction, 1.0, "no Llama/GPT-2 MLPs to prune")
    probe = self_probe_ids(model)
    reference = model(probe).logits.argmax(-1)
    scores = channel_scores(model, calibration_ids if calibration_ids is not None else probe)
    keep = keep_indices(scores, fraction)
    with simulated(model, keep):
        agreement = next_token_agreement(model, probe, reference)
    if agreement < min_agreement:
        reason = (
            f"pruning not applied: cutting {fraction:.0%} of MLP channels kept only "
            f"{agreement:.0%} next-token agreement (< {min_agreement:.0%})"
        )
        log.info("%s", reason)
        return PruneDecision(None, fraction, agreement, reason)
    report = cut(model, keep, "activation")
    return PruneDecision(report, fraction, agreement, f"{report.describe()}, {agreement:.0%} agreement")
