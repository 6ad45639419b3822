"""Text-to-music on a tiny random MusicGen built from configs: progress, cancel, int8 tier."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from pipelines.music.pipeline import (
    TextToMusicRequest,
)
from studio.events import Cancelled, CancelToken, Started, Step, UserError
from tests.pipelines.music.conftest import notices, run

# -- MusicGen ------------------------------------------------------------------------------------


def test_tiny_musicgen_produces_a_waveform_with_progress(pipeline) -> None:
    request = TextToMusicRequest(prompt="calm piano", duration_s=0.2, guidance_scale=3.0, seed=1)
    events, result = run(pipeline.text_to_music(request, CancelToken()))
    assert any("0.2 s is outside" in n and "using 1 s" in n for n in notices(events))
    started = next(e for e in events if isinstance(e, Started))
    assert started.total == 50  # 1 s at 50 frames/s
    assert [e for e in events if isinstance(e, Step)][-1].index == 50
    assert result.audio.sample_rate == 16000
    assert result.audio.duration_s == pytest.approx(1.0, abs=0.05)
    assert np.isfinite(result.audio.samples).all() and np.abs(result.audio.samples).max() > 0
    assert sf.info(str(result.files.wav)).samplerate == 16000


def test_musicgen_cancel_and_empty_prompt(pipeline) -> None:
    with pytest.raises(UserError, match="prompt is empty"):
        pipeline.text_to_music(TextToMusicRequest(prompt="  "), CancelToken())
    cancel = CancelToken()
    with pytest.raises(Cancelled):
        for event in pipeline.text_to_music(TextToMusicRequest(prompt="jazz", duration_s=5), cancel):
            if isinstance(event, Step):
                cancel.cancel()


def test_low_tier_quantizes_musicgen_and_it_still_generates(ctx, pipeline) -> None:
    from pipelines.memory.quantize import quantized_layers
    from pipelines.music.models import DEBUG_MUSICGEN_ID
    from pipelines.music.pipeline import TEXT_TASK

    ctx.registry.set_tier("low")
    bundle = ctx.registry.load(DEBUG_MUSICGEN_ID, TEXT_TASK).model
    assert quantized_layers(bundle.model) and any("int8" in a for a in bundle.applied)
    request = TextToMusicRequest(prompt="calm piano", duration_s=1, seed=2, model_id=DEBUG_MUSICGEN_ID)
    _, result = run(pipeline.text_to_music(request, CancelToken()))
    assert np.isfinite(result.audio.samples).all() and np.abs(result.audio.samples).max() > 0
