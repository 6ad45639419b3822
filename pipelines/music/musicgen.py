"""Text-to-music with MusicGen through transformers, and the tiny random MusicGen for tests.

`generate_musicgen` runs `MusicgenForConditionalGeneration.generate` with a logits processor that
turns each generated frame into a Step (the audio frames arrive at the EnCodec frame rate, 50 Hz for
facebook/musicgen-*), and raises Cancelled from that processor within one frame of a Stop.
The tiny model is built from configs (T5 text encoder, EnCodec, MusicGen decoder), as the
transformers test-suite does; EnCodec's quantizer count must equal the decoder's num_codebooks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from studio.events import CancelToken

log = logging.getLogger(__name__)


@dataclass
class MusicGenModel:
    """What the registry holds for a text-to-music entry."""

    model: Any  # MusicgenForConditionalGeneration
    tokenizer: Any  # T5 tokenizer (or any tokenizer for the tiny model)
    sampling_rate: int  # of the decoded waveform
    frame_rate: int  # audio token frames per second
    label: str = ""
    applied: list[str] = field(default_factory=list)  # memory-plan actions applied at load


def load_musicgen(
    path: str | Path, dtype: torch.dtype = torch.float32, device: str = "cpu", label: str = ""
) -> MusicGenModel:
    """Hub id or folder -> model + tokenizer, with the ordinary from_pretrained."""
    from transformers import AutoTokenizer, MusicgenForConditionalGeneration

    model = MusicgenForConditionalGeneration.from_pretrained(str(path), dtype=dtype).to(device)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    audio_cfg = model.config.audio_encoder
    return MusicGenModel(model, tokenizer, int(audio_cfg.sampling_rate), int(audio_cfg.frame_rate), label)


class _FrameProgress:
    """A LogitsProcessor that reports each audio frame; it returns the scores unchanged.

    (A streamer would be the natural hook, but MusicgenForConditionalGeneration.generate in
    transformers 5 hands it only the prompt, never the sampling loop; logits processors run once
    per generated frame.)
    """

    def __init__(self, on_frame: Callable[[int], None], cancel: CancelToken) -> None:
        self.on_frame = on_frame
        self.cancel = cancel
        self.frames = 0

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        # Stop: raise out of the sampling loop (a StoppingCriteria that ends mid-way breaks
        # MusicGen's codebook delay pattern when the partial frames are reshaped)
        self.cancel.raise_if_cancelled()
        self.frames += 1
        self.on_frame(self.frames)
        return scores


def generate_musicgen(
    mg: MusicGenModel,
    prompt: str,
    duration_s: float,
    guidance_scale: float,
    seed: int,
    cancel: CancelToken,
    on_frame: Callable[[int, int], None],
    temperature: float = 1.0,
    top_k: int = 250,
) -> np.ndarray:
    """A mono float32 waveform at mg.sampling_rate; `on_frame(done, total)` per audio frame."""
    from transformers import LogitsProcessorList

    total = max(1, int(round(duration_s * mg.frame_rate)))
    inputs = mg.tokenizer([prompt], return_tensors="pt", padding=True)
    inputs = {k: v.to(mg.model.device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    with torch.no_grad():
        audio = mg.model.generate(
            **inputs,
            do_sample=True,
            guidance_scale=guidance_scale if guidance_scale > 1 else None,
            max_new_tokens=total,
            temperature=max(temperature, 1e-3),
            top_k=top_k,
            logits_processor=LogitsProcessorList(
                [_FrameProgress(lambda done: on_frame(min(done, total), total), cancel)]
            ),
        )
    log.info("musicgen: %d frames in %.1f s", total, time.perf_counter() - t0)
    wave = audio[0, 0].float().cpu().numpy()
    return np.clip(np.nan_to_num(wave), -1.0, 1.0).astype(np.float32)
