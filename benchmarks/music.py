"""Music benchmarks: compose + render speed, and the composer's held-out NLL vs the n-gram baseline.

- `realtime_factor`: seconds of audio per second of compute for compose + render of 30 s of
  music (bundled composer, one thread), for each style; best of 3 (noise on a shared box only
  adds time), with the compose / render split. Goal ≥ 100.
- `heldout_nll`: per-token NLL (nats) on the test split of the composer and of the interpolated
  Kneser-Ney n-gram fitted on the same training split (order chosen on validation). Needs the
  parsed corpus cache (training/music_composer/dataset.py builds it once, ~3-6 min) and ~1 min
  of CPU for the n-gram counts. The composer is scored with bar-aligned strided windows.
"""

from __future__ import annotations

import time

import torch

from pipelines.music.composer import load_composer


def run() -> list[dict]:
    from training.music_composer import dataset
    from training.music_composer.evaluate import STRIDE, heldout_nll, ngram_nll, realtime_factor

    torch.set_num_threads(1)
    bundle = load_composer()
    rows: list[dict] = []
    # 1. speed: warm up once (first-call allocations), then best of 3 per style
    realtime_factor(bundle, seconds=5.0, repeats=1)
    for style in ("chorale", "folk", "irish"):
        r = realtime_factor(bundle, seconds=30.0, style=style, repeats=3)
        rows.append(
            {
                "name": "realtime_factor",
                "style": style,
                "value": round(r["realtime_factor"], 1),
                "goal": 100,
                "audio_s": round(r["audio_s"], 2),
                "compose_s": round(r["compose_s"], 3),
                "render_s": round(r["render_s"], 3),
                "notes": r["notes"],
            }
        )
    # 2. held-out NLL, model vs n-gram, on the same test tokens
    t0 = time.perf_counter()
    pieces = dataset.build()
    model = heldout_nll(bundle, pieces, stride=STRIDE)
    ngram, order, _ = ngram_nll(pieces, bundle.vocab)
    for subset in model:
        rows.append(
            {
                "name": "heldout_nll",
                "subset": subset,
                "model": round(model[subset], 4),
                "ngram": round(ngram[subset], 4),
                "ngram_order": order,
                "model_beats_ngram": model[subset] < ngram[subset],
            }
        )
    rows[-1]["seconds"] = round(time.perf_counter() - t0, 1)
    return rows
