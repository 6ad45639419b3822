"""Music pipeline: tokenizer, composer, continuation, render, key estimate, tiny MusicGen, bad input.

Everything runs the real libraries (miditok, the bundled composer, tinysoundfont, librosa,
transformers' MusicGen built from tiny configs); no mocks.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from pipelines.music.audio import chroma_key, load_audio
from pipelines.music.limits import MAX_BARS, validate_compose
from pipelines.music.models import COMPOSER_ID
from pipelines.music.pipeline import (
    AnalyseRequest,
    ComposeRequest,
    ContinueRequest,
)
from pipelines.music.render import render
from pipelines.music.tokens import Key, make_tokenizer
from studio.events import Cancelled, CancelToken, Started, Step, UserError
from tests.pipelines.music.conftest import melody_midi, notices, run

SPLIT = Path(__file__).resolve().parents[3] / "assets" / "models" / "music-composer" / "split.json"


# -- compose -------------------------------------------------------------------------------------


def test_compose_writes_valid_midi_of_the_requested_length_key_and_tempo(pipeline) -> None:
    request = ComposeRequest(
        style="chorale", key="D minor", tempo=96, bars=4, seed=11, instruments=(19, 52, 52, 42)
    )
    events, result = run(pipeline.compose(request, CancelToken()))
    assert isinstance(events[0], Started)
    steps = [e for e in events if isinstance(e, Step)]
    indices = [s.index for s in steps]  # one per bar, then the render (stale ones may be dropped)
    assert indices == sorted(indices) and indices[-1] == 5 and all(s.total == 5 for s in steps)
    midi = pretty_midi.PrettyMIDI(str(result.files.midi))
    assert midi.get_end_time() == pytest.approx(4 * 4 * 60 / 96, abs=1e-3)  # 4 bars of 4/4 at 96 BPM
    assert midi.get_tempo_changes()[1][0] == pytest.approx(96, abs=0.01)
    assert pretty_midi.key_number_to_key_name(midi.key_signature_changes[0].key_number) == "D minor"
    assert [i.program for i in midi.instruments] == [19, 52, 52, 42]
    pitches = [n.pitch for i in midi.instruments for n in i.notes]
    in_scale = np.mean([p % 12 in Key(2, "minor").scale for p in pitches])
    assert len(pitches) >= 16 and in_scale >= 0.9, (len(pitches), in_scale)
    # saved with its parameters
    record = pipeline.store.get(result.record_id)
    assert record.params["key"] == "D minor" and record.params["bars"] == 4 and record.params["seed"] == 11
    assert {p.suffix for p in record.files} == {".mid", ".wav", ".mp3", ".png"}


def test_melody_styles_have_one_part_and_the_same_seed_gives_the_same_piece(pipeline) -> None:
    request = ComposeRequest(style="irish", key="G major", bars=4, seed=3, audio_format="OGG")
    _, first = run(pipeline.compose(request, CancelToken()))
    _, second = run(pipeline.compose(request, CancelToken()))
    assert len(first.score.tracks) == 1 and first.score.tracks[0].program == 110
    notes = lambda r: [(n.time, n.duration, n.pitch) for n in r.score.tracks[0].notes]  # noqa: E731
    assert notes(first) == notes(second)
    assert first.files.compressed.suffix == ".ogg" and sf.info(str(first.files.compressed)).format == "OGG"


def test_rendered_audio_has_the_expected_duration_and_is_not_silent(pipeline) -> None:
    _, result = run(
        pipeline.compose(
            ComposeRequest(style="folk", key="F major", tempo=120, bars=2, seed=1), CancelToken()
        )
    )
    expected = 2 * 4 * 60 / 120 + 1.0  # two bars at 120 BPM plus the one-second release tail
    info = sf.info(str(result.files.wav))
    assert info.duration == pytest.approx(expected, abs=0.01)
    samples, _ = sf.read(str(result.files.wav))
    assert np.sqrt(np.mean(samples**2)) > 0.01
    assert sf.info(str(result.files.compressed)).format == "MP3"


def test_length_of_0_or_10000_bars_is_clamped_with_a_notice(pipeline) -> None:
    events, result = run(pipeline.compose(ComposeRequest(style="folk", bars=0, seed=2), CancelToken()))
    assert any("0 bars" in n and "using 1" in n for n in notices(events))
    assert result.params["bars"] == 1
    cleaned, _, messages = validate_compose(ComposeRequest(bars=10_000))
    assert cleaned.bars == MAX_BARS and "10,000 bars" in messages[0]


def test_bad_requests_fail_before_loading(pipeline) -> None:
    for request, words in [
        (ComposeRequest(style="polka"), "Unknown style"),
        (ComposeRequest(key="H major"), "Unknown key"),
        (ComposeRequest(temperature=0), "Temperature"),
        (ComposeRequest(seed="abc"), "Seed"),  # type: ignore[arg-type]
    ]:
        with pytest.raises(UserError, match=words):
            pipeline.compose(request, CancelToken())
    assert pipeline.registry.loaded_ids() == []


def test_cancel_stops_within_a_bar(pipeline) -> None:
    cancel = CancelToken()
    seen = []
    with pytest.raises(Cancelled):
        for event in pipeline.compose(ComposeRequest(style="chorale", bars=32, seed=1), cancel):
            if isinstance(event, Step):
                seen.append(event.index)
                cancel.cancel()
    assert seen and max(seen) <= 2


# -- continue ------------------------------------------------------------------------------------


def test_continuation_from_midi_starts_with_the_given_notes(pipeline, tmp_path: Path) -> None:
    opening = melody_midi(tmp_path / "opening.mid", [62, 64, 66, 67, 69, 71, 69, 67, 66, 64, 62, 64])
    events, result = run(
        pipeline.continue_piece(
            ContinueRequest(midi_path=str(tmp_path / "opening.mid"), style="folk", bars=4, seed=4),
            CancelToken(),
        )
    )
    notes = sorted((n.time, n.pitch) for n in result.score.tracks[0].notes)
    assert [p for _, p in notes[: len(opening)]] == opening
    assert [t for t, _ in notes[: len(opening)]] == [i * 480 for i in range(len(opening))]
    assert len(notes) > len(opening)  # something new was added ...
    assert min(t for t, _ in notes[len(opening) :]) >= len(opening) * 480  # ... after the opening
    assert result.opening_notes == len(opening)
    assert "D major" in " ".join(notices(events))  # the key was estimated from the opening
    assert pretty_midi.PrettyMIDI(str(result.files.midi)).get_end_time() == pytest.approx(
        (3 + 4) * 4 * 0.6, abs=1e-3
    )


def test_continuation_from_audio_hears_the_melody(pipeline, tmp_path: Path) -> None:
    pitches = [67, 69, 71, 72, 74, 72, 71, 69]
    melody_midi(tmp_path / "m.mid", pitches, tempo=100, key=Key(7, "major"))
    audio = render(pretty_midi_score(tmp_path / "m.mid"))
    sf.write(str(tmp_path / "m.wav"), audio.samples, audio.sample_rate)
    request = ContinueRequest(audio_path=str(tmp_path / "m.wav"), style="folk", bars=2, tempo=100, seed=1)
    _, result = run(pipeline.continue_piece(request, CancelToken()))
    heard = [n.pitch for n in sorted(result.score.tracks[0].notes, key=lambda n: n.time)][: len(pitches)]
    assert heard == pitches


def pretty_midi_score(path: Path):
    import symusic

    return symusic.Score(str(path))


# -- key estimate --------------------------------------------------------------------------------


def test_key_estimate_is_right_on_rendered_held_out_chorales() -> None:
    from training.music_composer.evaluate import render_chorale

    split = json.loads(SPLIT.read_text())
    pieces = split["split"]["test"]["chorale"][:10]
    right = []
    for piece in pieces:
        samples, rate = render_chorale(piece)
        estimate, _ = chroma_key(samples, rate)
        right.append(estimate.name == split["keys"][piece])
    assert sum(right) >= 8, right


def test_analysis_reports_tempo_key_and_figures(pipeline, tmp_path: Path) -> None:
    _, result = run(
        pipeline.compose(
            ComposeRequest(style="chorale", key="A major", tempo=100, bars=4, seed=5), CancelToken()
        )
    )
    _, analysis = run(
        pipeline.analyse(AnalyseRequest(str(result.files.wav), str(result.files.midi)), CancelToken())
    )
    a = analysis.analysis
    assert a.duration_s == pytest.approx(4 * 4 * 0.6 + 1.0, abs=0.05)
    assert 40 < a.tempo_bpm < 250 and len(a.beats_s) >= 4
    assert a.key in [k for k, _ in a.key_ranking]
    assert set(analysis.figures) == {"waveform", "mel", "pianoroll"}
    for path in analysis.figures.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- bad input -----------------------------------------------------------------------------------


def test_corrupt_zero_byte_and_non_midi_files_are_refused(pipeline, tmp_path: Path) -> None:
    (tmp_path / "empty.mid").write_bytes(b"")
    (tmp_path / "text.mid").write_text("not a midi file")
    (tmp_path / "broken.mid").write_bytes(
        b"MThd\x00\x00\x00\x06\x00\x01\x00\x05\x01\xe0MTrk\xff\xff\xff\xff\x00\x90"
    )
    for name, words in [("empty.mid", "empty"), ("text.mid", "not a MIDI file"), ("broken.mid", "corrupt")]:
        with pytest.raises(UserError, match=words):
            pipeline.continue_piece(ContinueRequest(midi_path=str(tmp_path / name)), CancelToken())


def test_zero_byte_and_non_audio_uploads_are_refused(pipeline, tmp_path: Path) -> None:
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "fake.wav").write_bytes(b"RIFF1234WAVEjunkjunkjunk")
    for name, words in [
        ("empty.wav", "empty"),
        ("notes.txt", "could not be read as audio"),
        ("fake.wav", "could not be"),
    ]:
        with pytest.raises(UserError, match=words):
            run(pipeline.continue_piece(ContinueRequest(audio_path=str(tmp_path / name)), CancelToken()))
    with pytest.raises(UserError, match="Upload a MIDI file or an audio clip"):
        pipeline.continue_piece(ContinueRequest(), CancelToken())


def test_silence_says_no_pitch_found(pipeline, tmp_path: Path) -> None:
    sf.write(str(tmp_path / "silence.wav"), np.zeros(16000 * 2, dtype=np.float32), 16000)
    with pytest.raises(UserError, match="No pitch found"):
        run(pipeline.continue_piece(ContinueRequest(audio_path=str(tmp_path / "silence.wav")), CancelToken()))
    with pytest.raises(UserError, match="silent"):
        run(pipeline.analyse(AnalyseRequest(audio_path=str(tmp_path / "silence.wav")), CancelToken()))


def test_a_two_hour_upload_is_trimmed_with_a_notice(pipeline, tmp_path: Path) -> None:
    # two hours of a 220 Hz tone at 1 kHz, 8-bit: 7 MB on disk
    rate, seconds = 1000, 2 * 3600
    path = tmp_path / "two_hours.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(rate)
        tone = (128 + 60 * np.sin(2 * np.pi * 220 * np.arange(rate * 60) / rate)).astype(np.uint8).tobytes()
        for _ in range(seconds // 60):
            w.writeframes(tone)
    loaded = load_audio(path, 600)
    assert loaded.duration_s == pytest.approx(600, abs=0.1) and loaded.original_s == pytest.approx(seconds)
    assert "2:00:00" in loaded.notice and "10:00" in loaded.notice
    events, result = run(
        pipeline.continue_piece(
            ContinueRequest(audio_path=str(path), bars=1, tempo=120, seed=1), CancelToken()
        )
    )
    assert any("2:00:00" in n and "0:30" in n for n in notices(events))
    assert result.opening_notes >= 1 and result.score.tracks[0].notes[0].pitch == 57  # A3 = 220 Hz


def test_registry_has_the_bundled_composer_by_default(ctx) -> None:
    from pipelines.music.pipeline import TASK

    assert ctx.registry.default_id(TASK) == COMPOSER_ID
    bundle = ctx.registry.load("", TASK).model
    assert bundle.model.config.vocab_size == len(make_tokenizer())
