"""The composer network: a small nanoGPT-style decoder over REMI tokens, with a KV cache.

Written out (rather than a transformers GPT-2) because a tiny model on one CPU thread spends most
of its time in per-token framework overhead; this loop does ~1 ms per token.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ComposerConfig:
    vocab_size: int = 256  # REMI + conditioning tokens (set from the tokenizer)
    block_size: int = 512  # longest context in tokens
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # attention heads
    n_embd: int = 192  # embedding width
    dropout: float = 0.1  # on attention, residual and embeddings (training only)

    def to_dict(self) -> dict:
        return asdict(self)


class KVBuffer:
    """Preallocated keys/values for incremental decoding: (1, n_head, block_size, head_size) per layer.

    Writing into a fixed buffer avoids a torch.cat per layer per token (a third of the decode time
    at this size); `length` is how many positions are filled.
    """

    def __init__(self, config: ComposerConfig, batch: int = 1) -> None:
        hs = config.n_embd // config.n_head
        shape = (batch, config.n_head, config.block_size, hs)
        self.k = [torch.zeros(shape) for _ in range(config.n_layer)]
        self.v = [torch.zeros(shape) for _ in range(config.n_layer)]
        self.length = 0


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ComposerConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.dropout = config.dropout
        self.resid_drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache: KVBuffer | None = None, layer: int = 0) -> torch.Tensor:
        B, T, C = x.shape
        # 1. project to queries, keys, values: (B, nh, T, hs)
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if cache is None:
            # 2a. training / full forward: plain causal attention
            y = F.scaled_dot_product_attention(
                q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
            )
        else:
            # 2b. decoding: write this step's keys/values into the buffer, attend over the filled part
            start = cache.length
            cache.k[layer][:, :, start : start + T] = k
            cache.v[layer][:, :, start : start + T] = v
            keys, values = cache.k[layer][:, :, : start + T], cache.v[layer][:, :, : start + T]
            if T == 1:
                y = F.scaled_dot_product_attention(q, keys, values)  # every cached key is in the past
            elif start == 0:
                y = F.scaled_dot_product_attention(q, keys, values, is_causal=True)
            else:
                mask = torch.ones(T, start + T, dtype=torch.bool).tril(diagonal=start)
                y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble heads
        return self.resid_drop(self.proj(y))


class Block(nn.Module):
    def __init__(self, config: ComposerConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(config.n_embd, 4 * config.n_embd),
            nn.GELU(),
            nn.Linear(4 * config.n_embd, config.n_embd),
            nn.Dropout(config.dropout),
        )

    def forward(self, x: torch.Tensor, cache: KVBuffer | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)
        x = x + self.mlp(self.ln_2(x))
        return x


class Composer(nn.Module):
    def __init__(self, config: ComposerConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying (as GPT-2)
        self.apply(self._init_weights)
        # scaled init of the residual projections, per GPT-2
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, cache: KVBuffer | None = None) -> torch.Tensor:
        """idx (B, T) -> logits (B, T, vocab). With a cache, idx continues the cached positions."""
        B, T = idx.shape
        start = cache.length if cache is not None else 0
        if start + T > self.config.block_size:
            raise ValueError(f"sequence of {start + T} exceeds block_size {self.config.block_size}")
        pos = torch.arange(start, start + T, dtype=torch.long, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C)
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i)
        if cache is not None:
            cache.length += T
        return self.lm_head(self.ln_f(x))

    def decode_step(self, token: int, cache: KVBuffer) -> torch.Tensor:
        """One token -> next-token logits (vocab,), appending to the cache. Inference only.

        The same computation as forward() on a (1, 1) input, written with functional calls:
        at this width, nn.Module call overhead and no-op dropouts cost as much as the matmuls.
        """
        C, nh = self.config.n_embd, self.config.n_head
        hs = C // nh
        t = cache.length
        if t + 1 > self.config.block_size:
            raise ValueError(f"sequence of {t + 1} exceeds block_size {self.config.block_size}")
        x = (self.wte.weight[token] + self.wpe.weight[t]).view(1, C)  # (1, C)
        for i, block in enumerate(self.blocks):
            attn = block.attn
            # 1. attention over the cache plus this token
            h = F.layer_norm(x, (C,), block.ln_1.weight, block.ln_1.bias)
            q, k, v = F.linear(h, attn.qkv.weight, attn.qkv.bias).view(3, nh, 1, hs)  # 3 x (nh, 1, hs)
            cache.k[i][0, :, t] = k[:, 0]
            cache.v[i][0, :, t] = v[:, 0]
            y = F.scaled_dot_product_attention(q, cache.k[i][0, :, : t + 1], cache.v[i][0, :, : t + 1])
            x = x + F.linear(y.view(1, C), attn.proj.weight, attn.proj.bias)
            # 2. MLP
            h = F.layer_norm(x, (C,), block.ln_2.weight, block.ln_2.bias)
            fc, out = block.mlp[0], block.mlp[2]
            x = x + F.linear(F.gelu(F.linear(h, fc.weight, fc.bias)), out.weight, out.bias)
        cache.length = t + 1
        x = F.layer_norm(x, (C,), self.ln_f.weight, self.ln_f.bias)
        return F.linear(x, self.lm_head.weight)[0]

    def loss(self, idx: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
        logits = self(idx)
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=ignore_index)
