"""Music benchmarks: compose + render speed, and the composer's held-out NLL vs the n-gram baseline.

- `realtime_factor`: seconds of audio per second of compute for compose + render of 30 s of
  music (bundled composer, one thread), for each style; best of 5 (noise on a shared box only
  adds time), with the compose / render split and the same figure on CPU time
  (`value_cpu`, not inflated by waiting for a core). Goal: the minimum over styles ≥ 100.
- `sampler_nll`: the sampler's network (pipelines.music.decoder, numpy) scored token by token on
  held-out test pieces against the torch network that `heldout_nll` scores: same weights, so the
  two NLLs must agree (the speed-up costs no quality).
- `heldout_nll`: per-token NLL (nats) on the test split of the composer and of the interpolated
  Kneser-Ney n-gram fitted on the same training split (order chosen on validation). Needs the
  parsed corpus cache (training/music_composer/dataset.py builds it once, ~3-6 min) and ~1 min
  of CPU for the n-gram counts. The composer is scored with bar-aligned strided windows.
"""

from __future__ import annotations

import time

import torch

from pipelines.music.composer import load_composer


def sampler_nll(bundle, pieces: list, max_pieces: int = 30) -> dict:
    """Per-token NLL of the first test pieces' opening block: torch forward vs the numpy decoder."""
    import numpy as np

    torch_nll, numpy_nll, count = 0.0, 0.0, 0
    block = bundle.model.config.block_size
    for piece in [p for p in pieces if p.split == "test"][:max_pieces]:
        ids = list(piece.ids)[:block]  # conditioning prefix first
        with torch.inference_mode():
            logits = torch.log_softmax(bundle.model(torch.tensor([ids]))[0, :-1].double(), dim=-1)
        torch_nll -= float(logits[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].sum())
        decoder = bundle.decoder.fork()
        for position, token in enumerate(ids[:-1]):
            step = decoder.feed([token]).astype(np.float64)
            step -= step.max()
            numpy_nll -= step[ids[position + 1]] - np.log(np.exp(step).sum())
        count += len(ids) - 1
    return {
        "name": "sampler_nll",
        "torch_forward": round(torch_nll / count, 6),
        "numpy_decoder": round(numpy_nll / count, 6),
        "tokens": count,
        "same": bool(abs(torch_nll - numpy_nll) / count < 1e-4),
    }


def run() -> list[dict]:
    from training.music_composer import dataset
    from training.music_composer.evaluate import STRIDE, heldout_nll, ngram_nll, realtime_factor

    torch.set_num_threads(1)
    bundle = load_composer()
    rows: list[dict] = []
    # 1. speed: warm up once (first-call allocations), then best of 3 per style
    realtime_factor(bundle, seconds=5.0, repeats=1)
    for style in ("chorale", "folk", "irish"):
        r = realtime_factor(bundle, seconds=30.0, style=style, repeats=5)
        rows.append(
            {
                "name": "realtime_factor",
                "style": style,
                "value": round(r["realtime_factor"], 1),
                "value_cpu": round(r["realtime_factor_cpu"], 1),
                "goal": 100,
                "audio_s": round(r["audio_s"], 2),
                "compose_s": round(r["compose_s"], 3),
                "render_s": round(r["render_s"], 3),
                "notes": r["notes"],
            }
        )
    worst = min(rows, key=lambda row: row["value"])
    rows.append(
        {
            "name": "min_realtime_factor",
            "style": worst["style"],
            "value": worst["value"],
            "value_cpu": min(row["value_cpu"] for row in rows),
            "goal": 100,
            "meets_goal": worst["value"] >= 100,
        }
    )
    # 2. held-out NLL, model vs n-gram, on the same test tokens
    t0 = time.perf_counter()
    pieces = dataset.build()
    rows.append(sampler_nll(bundle, pieces))
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
