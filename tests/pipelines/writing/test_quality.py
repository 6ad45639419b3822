"""The quality bound for quantized writing (pipelines.writing.quality), on tiny models.

The real embedded model is measured against fp32 in test_engine.py and `python -m benchmarks
writing_engine`; here the functions themselves, and the held-out text they read.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.testing import tiny_gpt2, train_tiny_tokenizer
from pipelines.writing.quality import (
    HELDOUT_PATH,
    MIN_AGREEMENT,
    Quality,
    heldout_ids,
    heldout_text,
    logits_of,
    perplexity,
    quality_against,
    reference_of,
    teacher_forced_agreement,
    top1_agreement,
)

REPO = Path(__file__).resolve().parents[3]


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def test_the_heldout_text_is_long_prose_with_its_source_and_no_prompt_of_the_app() -> None:
    text = heldout_text()
    assert not any(line.startswith("#") for line in text.splitlines())
    header = HELDOUT_PATH.read_text(encoding="utf-8").splitlines()[:4]
    assert any("Pride and Prejudice" in line and "public domain" in line for line in header)
    assert 1200 <= len(words(text)) <= 1500 and text.endswith("officers at once.")
    # none of its 8-word runs appears in the app's prompts, examples or writing code
    sources = [*(REPO / "pipelines" / "writing").glob("*.py"), *(REPO / "pages").glob("*.py")]
    ours = set()
    for path in sources:
        w = words(path.read_text(encoding="utf-8"))
        ours |= {tuple(w[i : i + 8]) for i in range(len(w) - 7)}
    w = words(text)
    assert not {tuple(w[i : i + 8]) for i in range(len(w) - 7)} & ours


def test_top1_agreement_counts_the_positions_whose_argmax_matches() -> None:
    reference = np.array([[0.0, 1.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.0]])
    candidate = reference.copy()
    assert top1_agreement(candidate, reference) == 1.0
    candidate[2] = [0.0, 5.0, 0.0]  # one of four positions flips
    assert top1_agreement(candidate, reference) == 0.75
    assert top1_agreement(candidate, reference.argmax(axis=-1)) == 0.75  # argmax ids on one side
    with pytest.raises(ValueError, match="positions differ"):
        top1_agreement(candidate[:3], reference)


def test_teacher_forced_agreement_and_perplexity_on_known_logits() -> None:
    # 2 prompt tokens, then a 2-token reference continuation [1, 2]
    logits = np.zeros((4, 3), dtype=np.float32)
    logits[1, 1] = 5.0  # position 1 predicts the first reference token (1): right
    logits[2, 0] = 5.0  # position 2 predicts the second one (2): wrong
    assert teacher_forced_agreement(logits, [1, 2], prompt_len=2) == 0.5
    uniform = np.zeros((5, 4), dtype=np.float32)
    assert perplexity(uniform, [0, 1, 2, 3, 0]) == pytest.approx(4.0)


@pytest.fixture(scope="module")
def tiny():
    tokenizer = train_tiny_tokenizer()
    return tiny_gpt2(len(tokenizer), seed=0, eos_token_id=tokenizer.eos_token_id), tokenizer


def test_a_model_against_itself_is_within_bounds_and_a_damaged_copy_is_not(tiny) -> None:
    model, tokenizer = tiny
    ids = heldout_ids(tokenizer)[:400]
    reference = reference_of(model, ids)
    assert reference.top1.shape == (len(ids) - 1,) and reference.ppl > 1
    same = quality_against(model, reference)
    assert same == Quality(1.0, len(ids) - 1, same.ppl, 1.0) and same.ok
    damaged = copy.deepcopy(model)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in damaged.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    worse = quality_against(damaged, reference)
    assert worse.agreement < MIN_AGREEMENT and worse.ppl_ratio != 1.0 and not worse.ok


def test_logits_of_reads_an_engine_like_object_too(tiny) -> None:
    model, tokenizer = tiny
    ids = heldout_ids(tokenizer)[:50]

    class Engine:  # what LlamaCppModel and the CTranslate2 row offer: logits(ids)
        def logits(self, ids: list[int]) -> np.ndarray:
            return logits_of(model, ids).astype(np.float64)

    got = logits_of(Engine(), ids)
    assert got.dtype == np.float32 and np.allclose(got, logits_of(model, ids))
    assert quality_against(Engine(), reference_of(model, ids)).agreement == 1.0
