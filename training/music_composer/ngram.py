"""The baseline: an interpolated Kneser-Ney n-gram model over the same REMI token sequences.

Counts come from the training split only; the order n is chosen on the validation split.
Each piece is left-padded with n-1 PAD ids, so its conditioning prefix (BOS Style Mode) is
part of the history, exactly as it is for the transformer.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence


class KneserNey:
    def __init__(self, n: int, vocab_size: int, pad_id: int) -> None:
        self.n = n
        self.vocab_size = vocab_size
        self.pad = pad_id
        # per order k (1..n): counts of (context, word), context totals, distinct followers
        self.counts: list[Counter] = [Counter() for _ in range(n + 1)]
        self.ctx_total: list[Counter] = [Counter() for _ in range(n + 1)]
        self.ctx_types: list[Counter] = [Counter() for _ in range(n + 1)]
        self.discount: list[float] = [0.75] * (n + 1)

    def fit(self, sequences: Sequence[Sequence[int]]) -> KneserNey:
        n = self.n
        # 1. raw counts of the highest order
        top = self.counts[n]
        for seq in sequences:
            padded = [self.pad] * (n - 1) + list(seq)
            for i in range(n - 1, len(padded)):
                top[tuple(padded[i - n + 1 : i + 1])] += 1
        # 2. continuation counts for lower orders: N1+(. ctx w) = distinct left extensions
        for k in range(n - 1, 0, -1):
            lower = self.counts[k]
            for gram in self.counts[k + 1]:
                lower[gram[1:]] += 1
        # 3. context totals, follower types and a discount per order (Ney et al.: n1 / (n1 + 2 n2))
        for k in range(1, n + 1):
            n1 = n2 = 0
            for gram, c in self.counts[k].items():
                self.ctx_total[k][gram[:-1]] += c
                self.ctx_types[k][gram[:-1]] += 1
                n1 += c == 1
                n2 += c == 2
            self.discount[k] = n1 / (n1 + 2 * n2) if n1 + n2 else 0.75
        return self

    def prob(self, history: Sequence[int], word: int) -> float:
        """P(word | last n-1 tokens of history), interpolated down to a uniform distribution."""
        p = 1.0 / self.vocab_size
        hist = tuple(history[-(self.n - 1) :]) if self.n > 1 else ()
        for k in range(1, self.n + 1):
            ctx = hist[len(hist) - (k - 1) :] if k > 1 else ()
            total = self.ctx_total[k].get(ctx, 0)
            if not total:
                continue  # unseen context: keep the lower-order estimate
            d = self.discount[k]
            c = self.counts[k].get((*ctx, word), 0)
            p = max(c - d, 0.0) / total + d * self.ctx_types[k][ctx] / total * p
        return p

    def nll(self, sequences: Sequence[Sequence[int]], skip: int) -> tuple[float, int]:
        """Summed NLL (nats) and count over each sequence's tokens from index `skip` on."""
        total, count = 0.0, 0
        for seq in sequences:
            padded = [self.pad] * (self.n - 1) + list(seq)
            for i in range(self.n - 1 + skip, len(padded)):
                total -= math.log(self.prob(padded[i - self.n + 1 : i], padded[i]))
                count += 1
        return total, count


def choose_order(
    train: Sequence[Sequence[int]],
    val: Sequence[Sequence[int]],
    vocab_size: int,
    pad_id: int,
    skip: int,
    max_order: int = 16,
) -> tuple[KneserNey, dict[int, float]]:
    """Fit n = 2, 3, ... on train while the per-token NLL on val improves; keep the best."""
    scores: dict[int, float] = {}
    best: KneserNey | None = None
    for n in range(2, max_order + 1):
        model = KneserNey(n, vocab_size, pad_id).fit(train)
        total, count = model.nll(val, skip)
        scores[n] = total / count
        if best is None or scores[n] < scores[best.n]:
            best = model
        elif n >= best.n + 2:
            break  # two orders without a gain: longer histories only get sparser
    assert best is not None
    return best, scores
