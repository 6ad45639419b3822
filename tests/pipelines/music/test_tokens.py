"""The REMI tokenizer round-trips real chorales."""

from __future__ import annotations

from pipelines.music.tokens import make_tokenizer, voices_score

# -- tokenizer -----------------------------------------------------------------------------------


def test_tokenizer_round_trips_a_corpus_chorale() -> None:
    from music21 import corpus

    from training.music_composer.dataset import score_to_voices

    voices = score_to_voices(corpus.parse("bach/bwv269"))
    assert len(voices) == 4 and all(len(v) > 30 for v in voices)
    tokenizer = make_tokenizer()
    tokens = tokenizer.encode(voices_score(voices))
    assert tokens.tokens[:2] == ["Bar_None", "Position_8"]  # the pickup sits on the bar grid
    decoded = tokenizer.decode(tokens)
    got = [sorted((n.time, n.duration, n.pitch) for n in t.notes) for t in decoded.tracks]
    assert got == [sorted(v) for v in voices]
