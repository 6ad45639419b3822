"""The composer's inference path in numpy: the same network as `Composer.forward`, ~3x cheaper per token.

At 4 layers x 192 wide, one torch op costs more in dispatch than in arithmetic; numpy's calls are a
few times cheaper, and a sampling step is ~40 of them. Exact arithmetic is kept (fp32, exact-erf
GELU); the layer-norm gains and biases are folded into the matmul that follows them and the
attention scale into the query weights, which moves logits by ~1e-6 (tests/pipelines/music/
test_decoder.py checks it against `Composer.forward`).

Keys are cached transposed (head, head_size, position), so a query's scores are one batched
matmul; `feed(ids)` runs any number of new positions at once (the prompt, or a sampled token plus
the tokens the grammar forces after it) and returns the logits after the last.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.special import erf

from pipelines.music.network import Composer

LN_EPS = 1e-5  # nn.LayerNorm's default, as in the network


def _normalize(x: np.ndarray) -> np.ndarray:
    """Layer norm without the affine part (folded into the next matmul): rows of x (T, C).

    sum() * (1/C) rather than mean(): mean's Python wrapper costs more than the arithmetic here.
    """
    inv_c = np.float32(1.0 / x.shape[-1])
    centred = x - x.sum(axis=-1, keepdims=True) * inv_c
    return centred / np.sqrt((centred * centred).sum(axis=-1, keepdims=True) * inv_c + np.float32(LN_EPS))


class NumpyDecoder:
    """Incremental decoding of a trained Composer with a preallocated numpy KV cache."""

    def __init__(self, model: Composer) -> None:
        config = model.config
        self.C, self.n_head = config.n_embd, config.n_head
        self.head_size = self.C // self.n_head
        self.block_size = config.block_size
        w = {k: v.detach().to(torch.float32).numpy() for k, v in model.state_dict().items()}
        scale = np.float32(1.0 / np.sqrt(self.head_size))
        self.layers = []
        for i in range(config.n_layer):
            p = f"blocks.{i}."
            # LN(x) @ W.T + b == norm(x) @ (gamma * W.T) + (beta @ W.T + b)
            qkv_w = w[p + "ln_1.weight"][:, None] * w[p + "attn.qkv.weight"].T  # (C, 3C)
            qkv_b = w[p + "ln_1.bias"] @ w[p + "attn.qkv.weight"].T + w[p + "attn.qkv.bias"]
            qkv_w[:, : self.C] *= scale  # the 1/sqrt(head_size) of attention, applied to q once
            qkv_b[: self.C] *= scale
            fc_w = w[p + "ln_2.weight"][:, None] * w[p + "mlp.0.weight"].T  # (C, 4C)
            fc_b = w[p + "ln_2.bias"] @ w[p + "mlp.0.weight"].T + w[p + "mlp.0.bias"]
            self.layers.append(
                tuple(
                    np.ascontiguousarray(a, dtype=np.float32)
                    for a in (
                        qkv_w,
                        qkv_b,
                        w[p + "attn.proj.weight"].T,
                        w[p + "attn.proj.bias"],
                        fc_w,
                        fc_b,
                        w[p + "mlp.2.weight"].T,
                        w[p + "mlp.2.bias"],
                    )
                )
            )
        self.wte, self.wpe = w["wte.weight"], w["wpe.weight"]
        head = w["lm_head.weight"].T  # tied to wte: (C, vocab)
        self.head_w = np.ascontiguousarray(w["ln_f.weight"][:, None] * head)
        self.head_b = (w["ln_f.bias"] @ head).astype(np.float32)
        self.n_layer = config.n_layer
        self._new_cache()

    def _new_cache(self) -> None:
        shape = (self.n_layer, self.n_head, self.head_size, self.block_size)
        self.keys_t = np.zeros(shape, dtype=np.float32)  # (layer, head, head_size, position)
        self.values = np.zeros((self.n_layer, self.n_head, self.block_size, self.head_size), np.float32)
        self.length = 0  # positions filled

    def fork(self) -> NumpyDecoder:
        """A decoder sharing these (read-only) weights with its own empty cache: one per sampling call."""
        twin = object.__new__(NumpyDecoder)
        twin.__dict__.update({k: v for k, v in self.__dict__.items() if k not in ("keys_t", "values")})
        twin._new_cache()
        return twin

    def reset(self) -> None:
        self.length = 0

    def feed(self, ids: Sequence[int]) -> np.ndarray:
        """Run `ids` at the next positions; returns the next-token logits after the last one (vocab,)."""
        T, start = len(ids), self.length
        end = start + T
        if T == 0 or end > self.block_size:
            raise ValueError(f"cannot feed {T} tokens at position {start} (block size {self.block_size})")
        C, nh, hs = self.C, self.n_head, self.head_size
        x = self.wte[np.asarray(ids)] + self.wpe[start:end]  # (T, C)
        # causal mask over the new positions (earlier cached positions are all visible)
        mask = np.triu(np.full((T, end), -np.inf, np.float32), k=start + 1) if T > 1 else None
        for i, (qkv_w, qkv_b, proj_w, proj_b, fc_w, fc_b, out_w, out_b) in enumerate(self.layers):
            # 1. attention: write this step's keys/values, attend over every filled position
            qkv = _normalize(x) @ qkv_w + qkv_b  # (T, 3C)
            q = qkv[:, :C].reshape(T, nh, hs).transpose(1, 0, 2)  # (nh, T, hs)
            self.keys_t[i, :, :, start:end] = qkv[:, C : 2 * C].reshape(T, nh, hs).transpose(1, 2, 0)
            self.values[i, :, start:end] = qkv[:, 2 * C :].reshape(T, nh, hs).transpose(1, 0, 2)
            scores = q @ self.keys_t[i, :, :, :end]  # (nh, T, end)
            if mask is not None:
                scores += mask
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            y = (scores @ self.values[i, :, :end]).transpose(1, 0, 2).reshape(T, C)
            x = x + (y @ proj_w + proj_b)
            # 2. MLP with the exact (erf) GELU of nn.GELU()
            h = _normalize(x) @ fc_w + fc_b
            h *= 0.5 * (1.0 + erf(h * np.float32(0.7071067811865476)))
            x = x + (h @ out_w + out_b)
        self.length = end
        return _normalize(x[-1:])[0] @ self.head_w + self.head_b
