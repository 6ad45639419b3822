"""Quality of a writing backend or memory tier against fp32 transformers, on logits alone.

Two figures, both over fixed token sequences, so one early difference cannot compound the way it
does in a free-running greedy comparison:

- teacher-forced next-token agreement: feed the reference continuation (fp32's own greedy text)
  and count the positions where the candidate's top-1 next token equals the reference's;
- perplexity on a held-out public-domain text, as a ratio to fp32's.

Bounds used by the benchmarks and tests: agreement >= 0.95 and perplexity ratio <= 1.02.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

MIN_AGREEMENT = 0.95
MAX_PPL_RATIO = 1.02

HELDOUT_TEXT = (  # public-domain openings (Dickens, Austen, Melville), none of them a prompt here
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
    "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, "
    "it was the season of Darkness, it was the spring of hope, it was the winter of despair, we had "
    "everything before us, we had nothing before us, we were all going direct to Heaven, we were all "
    "going direct the other way. There were a king with a large jaw and a queen with a plain face, on "
    "the throne of England. It is a truth universally acknowledged, that a single man in possession of a "
    "good fortune, must be in want of a wife. However little known the feelings or views of such a man may "
    "be on his first entering a neighbourhood, this truth is so well fixed in the minds of the surrounding "
    "families, that he is considered the rightful property of some one or other of their daughters. "
    "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my "
    "purse, and nothing particular to interest me on shore, I thought I would sail about a little and see "
    "the watery part of the world. It is a way I have of driving off the spleen and regulating the "
    "circulation."
)


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


def perplexity(logits: np.ndarray, ids: Sequence[int]) -> float:
    """exp(mean NLL) of ids[1:] under the logits of ids[:-1]."""
    x = logits[:-1].astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    log_probs = x - np.log(np.exp(x).sum(axis=-1, keepdims=True))
    nll = -log_probs[np.arange(len(ids) - 1), np.asarray(ids[1:])]
    return math.exp(float(nll.mean()))
