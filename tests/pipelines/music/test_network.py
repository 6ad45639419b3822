"""The composer transformer: incremental decoding equals the full forward."""

from __future__ import annotations


def test_incremental_decoding_matches_the_full_forward(ctx) -> None:
    import torch

    from pipelines.music.network import KVBuffer
    from pipelines.music.pipeline import TASK

    model = ctx.registry.load("", TASK).model.model
    ids = [1, 3, 6, 8, 40, 120, 160, 9, 45, 121]
    with torch.inference_mode():
        full = model(torch.tensor([ids]))[0]
        cache = KVBuffer(model.config)
        model(torch.tensor([ids[:4]]), cache)
        steps = torch.stack([model.decode_step(t, cache) for t in ids[4:]])
    assert torch.allclose(steps, full[4:], atol=1e-4)
