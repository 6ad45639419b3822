"""The numpy inference copy of the composer equals the torch network, token by token and in chunks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipelines.music.composer import SampleSettings, draw, load_composer, sample


@pytest.fixture(scope="module")
def bundle():
    return load_composer()


def full_logits(bundle, ids: list[int]) -> np.ndarray:
    with torch.inference_mode():
        return bundle.model(torch.tensor([ids]))[0].numpy()


def test_incremental_numpy_decoding_matches_the_torch_forward(bundle) -> None:
    """Same weights, same function: logits agree to float rounding at every position, so the
    composer's held-out NLL (scored by the torch forward) is the NLL of what the sampler draws from."""
    rng = np.random.default_rng(0)
    ids = [int(t) for t in rng.integers(0, bundle.model.config.vocab_size, 300)]
    reference = full_logits(bundle, ids)
    decoder = bundle.decoder.fork()
    got = [decoder.feed(ids[:40])]  # a prompt
    for start, size in ((40, 1), (41, 2), (43, 1), (44, 5)):  # single tokens and forced-token chunks
        got.append(decoder.feed(ids[start : start + size]))
    positions = [39, 40, 42, 43, 48]
    for logits, position in zip(got, positions, strict=True):
        assert np.abs(logits - reference[position]).max() < 1e-4, position
    for position in range(49, 300):  # the rest one token at a time
        logits = decoder.feed([ids[position]])
        assert np.abs(logits - reference[position]).max() < 1e-4, position
    assert decoder.length == 300


def test_forks_have_independent_caches(bundle) -> None:
    a, b = bundle.decoder.fork(), bundle.decoder.fork()
    a.feed([1, 3, 6])
    b.feed([1, 3, 7, 9, 12])  # another piece on the same weights, interleaved
    assert np.abs(a.feed([8]) - full_logits(bundle, [1, 3, 6, 8])[-1]).max() < 1e-4
    assert a.length == 4 and b.length == 5


def test_a_full_block_is_rejected_not_overrun(bundle) -> None:
    decoder = bundle.decoder.fork()
    decoder.feed([1] * bundle.model.config.block_size)
    with pytest.raises(ValueError, match="block size"):
        decoder.feed([1])


def test_draw_never_picks_a_masked_token_and_follows_the_distribution(bundle) -> None:
    logits = np.array([0.0, 2.0, 1.0, 5.0], dtype=np.float32)
    allowed = np.array([False, True, True, False])
    rng = np.random.default_rng(1)
    settings = SampleSettings(bars=1, temperature=1.0)
    counts = np.bincount([draw(logits, allowed, settings, rng) for _ in range(4000)], minlength=4)
    assert counts[0] == counts[3] == 0
    expected = np.exp(2.0) / (np.exp(2.0) + np.exp(1.0))  # 0.731
    assert abs(counts[1] / 4000 - expected) < 0.03
    top1 = SampleSettings(bars=1, temperature=1.0, top_k=1)
    assert {draw(logits, allowed, top1, rng) for _ in range(50)} == {1}


def test_sampling_is_reproducible_and_a_melody_never_samples_its_forced_voice_token(bundle) -> None:
    settings = SampleSettings(bars=4, temperature=0.9, seed=5, max_voices=1)
    a = sample(bundle, "folk", "major", settings)
    assert a == sample(bundle, "folk", "major", settings)
    assert a != sample(bundle, "folk", "major", SampleSettings(bars=4, temperature=0.9, seed=6, max_voices=1))
    voice0 = bundle.program_ids[0]
    after_position = [a[i + 1] for i in range(len(a) - 1) if bundle.position_of[a[i]] >= 0]
    assert after_position and set(after_position) == {voice0}
    assert a.count(bundle.bar_id) == 4
