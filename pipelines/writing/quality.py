"""Quality of a writing backend or memory tier against fp32 transformers, on logits alone.

Figures over fixed token sequences, so one early difference cannot compound the way it does in a
free-running greedy comparison:

- top-1 agreement on a held-out text (`top1_agreement`, the bound): at every position of
  `heldout.txt` (1,719 positions with SmolLM2's tokenizer, public-domain prose that is no prompt of the
  app), the share where the candidate's most likely next token is fp32's. At 192 positions one flipped
  near-tie moved the figure by half a percent and runs differed by about 2%; at 1,719 a flip is 0.06%;
- perplexity on the same held-out text, as a ratio to fp32's;
- teacher-forced agreement on fp32's own greedy continuation of a prompt (`teacher_forced_agreement`):
  the same idea on a model-written text, fewer positions (benchmarks report it beside the bound).

Bounds used by the benchmarks and tests: agreement >= 0.95 and perplexity ratio <= 1.02.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

MIN_AGREEMENT = 0.95
MAX_PPL_RATIO = 1.02
HELDOUT_PATH = Path(__file__).with_name("heldout.txt")


@functools.lru_cache(maxsize=1)
def heldout_text() -> str:
    """The held-out text: `heldout.txt` without its '#' header lines (source and licence)."""
    lines = HELDOUT_PATH.read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.startswith("#")).strip()


def heldout_ids(tokenizer: Any) -> list[int]:
    """The held-out text as token ids (no special tokens: plain prose, not a chat)."""
    return list(tokenizer(heldout_text(), add_special_tokens=False)["input_ids"])


def logits_of(model: Any, ids: Sequence[int]) -> np.ndarray:
    """Next-token logits at every position of `ids`, float32 [len(ids), vocab].

    `model` is a transformers causal LM, or anything with a `logits(ids)` method (the engine).
    """
    if hasattr(model, "logits"):
        return np.asarray(model.logits(list(ids)), dtype=np.float32)
    with torch.inference_mode():
        out = model(torch.tensor([list(ids)], device=model.device)).logits[0]
    return out.float().cpu().numpy()


def teacher_forced_agreement(logits: np.ndarray, reference: Sequence[int], prompt_len: int) -> float:
    """Share of the reference continuation's tokens that are the candidate's top-1 given the prefix.

    `logits` covers prompt + reference; position p predicts token p + 1.
    """
    predicted = logits[prompt_len - 1 : prompt_len - 1 + len(reference)].argmax(axis=-1)
    return float(np.mean(predicted == np.asarray(reference)))


def top1_agreement(candidate: np.ndarray, reference: np.ndarray) -> float:
    """Share of positions where the candidate's argmax is the reference's.

    Either side is logits [positions, vocab] or already argmax ids [positions].
    """
    a = candidate.argmax(axis=-1) if candidate.ndim == 2 else candidate
    b = reference.argmax(axis=-1) if reference.ndim == 2 else reference
    if a.shape != b.shape:
        raise ValueError(f"positions differ: {a.shape} vs {b.shape}")
    return float(np.mean(a == b))


def perplexity(logits: np.ndarray, ids: Sequence[int]) -> float:
    """exp(mean NLL) of ids[1:] under the logits of ids[:-1]."""
    x = logits[:-1].astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    log_probs = x - np.log(np.exp(x).sum(axis=-1, keepdims=True))
    nll = -log_probs[np.arange(len(ids) - 1), np.asarray(ids[1:])]
    return math.exp(float(nll.mean()))


@dataclass(frozen=True)
class Reference:
    """fp32's view of a text: its ids, its top-1 next token at each position, its perplexity."""

    ids: tuple[int, ...]
    top1: np.ndarray  # [len(ids) - 1] argmax ids predicting ids[1:]
    ppl: float


@dataclass(frozen=True)
class Quality:
    agreement: float  # top-1 agreement with the reference over `positions`
    positions: int
    ppl: float
    ppl_ratio: float

    @property
    def ok(self) -> bool:
        return self.agreement >= MIN_AGREEMENT and self.ppl_ratio <= MAX_PPL_RATIO


def reference_of(model: Any, ids: Sequence[int]) -> Reference:
    """What candidates are compared with: run the fp32 model once over the text."""
    logits = logits_of(model, ids)
    return Reference(tuple(int(i) for i in ids), logits[:-1].argmax(axis=-1), perplexity(logits, ids))


def quality_against(model: Any, reference: Reference) -> Quality:
    """Top-1 agreement and perplexity ratio of `model` on the reference's text."""
    logits = logits_of(model, reference.ids)
    ppl = perplexity(logits, reference.ids)
    agreement = top1_agreement(logits[:-1], reference.top1)
    return Quality(agreement, len(reference.top1), ppl, ppl / reference.ppl)
