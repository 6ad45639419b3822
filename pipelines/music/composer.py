"""The bundled composer: load the trained weights and sample REMI tokens bar by bar.

Sampling is constrained by the REMI grammar (Bar -> Position -> Program -> Pitch -> Duration ...)
and by time moving forward within a bar, so every sampled sequence decodes to a valid score. The
conditioning prefix `BOS Style Mode` is always in context; past `block_size` the context slides
to the most recent bars (prefix kept) and the KV cache is rebuilt.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import symusic
import torch

from pipelines import ASSETS_DIR
from pipelines.music.network import Composer, ComposerConfig, KVBuffer
from pipelines.music.tokens import conditioning_tokens, make_tokenizer
from studio.events import CancelToken

log = logging.getLogger(__name__)

ASSET_DIR = ASSETS_DIR / "models" / "music-composer"

# which token types may follow which (REMI, one stream, programs, no velocities)
NEXT_TYPES: dict[str, tuple[str, ...]] = {
    "Mode": ("Bar",),
    "Bar": ("Position",),  # no empty bars: a melody that has "ended" would otherwise go silent
    "Position": ("Program",),
    "Program": ("Pitch",),
    "Pitch": ("Duration",),
    "Duration": ("Program", "Position", "Bar", "EOS"),
}


@dataclass
class ComposerBundle:
    """What the registry holds for the composer entry."""

    model: Composer
    tokenizer: object  # miditok.REMI
    meta: dict  # config.json of the export (training step, val NLL, ...)
    label: str = ""

    def __post_init__(self) -> None:
        vocab: dict[str, int] = self.tokenizer.vocab
        self.vocab = vocab
        self.id_to_token = {i: t for t, i in vocab.items()}
        size = len(vocab)
        # 1. an allowed-next mask per token type
        types = np.array([t.split("_")[0] for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])])
        self.type_of = types
        self.masks: dict[str, torch.Tensor] = {}
        for prev, allowed in NEXT_TYPES.items():
            self.masks[prev] = torch.tensor(np.isin(types, allowed))
        self.bar_id = vocab["Bar_None"]
        self.eos_id = vocab["EOS_None"]
        # position value of each Position token, -1 for others
        self.position_of = np.full(size, -1)
        for token, i in vocab.items():
            if token.startswith("Position_"):
                self.position_of[i] = int(token.split("_")[1])
        self.position_ids = torch.tensor(self.position_of >= 0)
        self.program_ids = {int(t.split("_")[1]): i for t, i in vocab.items() if t.startswith("Program_")}
        self._allowed: dict[tuple[str, int, bool, int], torch.Tensor] = {}

    def allowed(self, prev_type: str, position: int, eos_ok: bool, max_voices: int) -> torch.Tensor:
        """Bool mask of the tokens that may follow (cached: the sampler asks ~1000 times a piece)."""
        key = (prev_type if prev_type in self.masks else "Duration", position, eos_ok, max_voices)
        mask = self._allowed.get(key)
        if mask is None:
            mask = self.masks[key[0]].clone()
            for voice, token_id in self.program_ids.items():
                if voice >= max_voices:
                    mask[token_id] = False  # voices beyond max_voices are never sampled
            if key[0] in ("Bar", "Duration"):
                # time only moves forward inside a bar
                mask &= ~(self.position_ids & torch.from_numpy(self.position_of <= position))
            mask[self.eos_id] = mask[self.eos_id] and eos_ok
            self._allowed[key] = mask
        return mask


def load_composer(folder: Path = ASSET_DIR, label: str = "") -> ComposerBundle:
    """Rebuild the network from config.json and load the fp16 safetensors as fp32."""
    from safetensors.torch import load_file

    folder = Path(folder)
    meta = json.loads((folder / "config.json").read_text())
    tokenizer = make_tokenizer()
    config = ComposerConfig(**meta["model"])
    if config.vocab_size != len(tokenizer):
        raise RuntimeError(
            f"composer vocabulary ({config.vocab_size}) does not match the tokenizer ({len(tokenizer)})"
        )
    model = Composer(config)
    state = {k: v.float() for k, v in load_file(str(folder / "composer.safetensors")).items()}
    state["lm_head.weight"] = state["wte.weight"]
    model.load_state_dict(state)
    model.eval()
    return ComposerBundle(model, tokenizer, meta, label)


@dataclass(frozen=True)
class SampleSettings:
    bars: int  # bars to generate after any given opening
    temperature: float = 1.0  # softmax temperature
    top_k: int = 0  # 0 = no top-k cut
    seed: int = 0
    max_voices: int = 4  # voices the sampler may use (1 for a melody)


@torch.inference_mode()
def sample(
    bundle: ComposerBundle,
    style: str,
    mode: str,
    settings: SampleSettings,
    opening: list[int] | None = None,
    cancel: CancelToken | None = None,
    on_bar: Callable[[int, int], None] | None = None,
) -> list[int]:
    """Token ids of the body (no prefix): the opening ids, then `settings.bars` new bars.

    `on_bar(done, total)` is called as each new bar is completed.
    """
    model = bundle.model
    block = model.config.block_size
    prefix = [bundle.vocab[t] for t in conditioning_tokens(style, mode)]
    body = list(opening or [])
    generator = torch.Generator().manual_seed(int(settings.seed))
    # bars: the opening's bars (its last one may be partial) plus the requested new ones
    opening_bars = body.count(bundle.bar_id) if body else 0
    if not body or body[0] != bundle.bar_id:
        body = [bundle.bar_id, *body]
        opening_bars = body.count(bundle.bar_id) if opening else 0
    target_bars = opening_bars + settings.bars
    position = -1  # current position within the bar
    for token_id in body:
        if token_id == bundle.bar_id:
            position = -1
        elif bundle.position_of[token_id] >= 0:
            position = int(bundle.position_of[token_id])
    last = body[-1]
    bars_now = body.count(bundle.bar_id)

    def context() -> list[int]:
        """Prefix + the most recent tokens that fit, starting at a bar line."""
        room = block - len(prefix) - 1
        if len(body) <= room:
            return prefix + body
        tail = body[-(room // 2 + room // 4) :]  # leave space to grow before the next slide
        bars = [i for i, t in enumerate(tail) if t == bundle.bar_id]
        return prefix + (tail[bars[0] :] if bars else tail)

    cache = KVBuffer(model.config)
    logits = model(torch.tensor([context()]), cache)[0, -1]
    while True:
        if cancel is not None:
            cancel.raise_if_cancelled()
        # 1. grammar: which tokens may follow the previous one
        allowed = bundle.allowed(
            str(bundle.type_of[last]), position, bars_now >= target_bars, settings.max_voices
        )
        # 2. sample from the tempered, masked distribution
        scores = logits / max(settings.temperature, 1e-4)
        scores = scores.masked_fill(~allowed, float("-inf"))
        if settings.top_k:
            kth = torch.topk(scores, min(settings.top_k, int(allowed.sum()))).values[-1]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        token = int(torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=generator))
        # 3. bookkeeping: a bar line (or EOS) past the last requested bar ends the piece
        if token in (bundle.bar_id, bundle.eos_id):
            if bars_now >= target_bars or token == bundle.eos_id:
                if on_bar is not None:
                    on_bar(settings.bars, settings.bars)
                break
            bars_now += 1
            position = -1
            if on_bar is not None:
                on_bar(bars_now - 1 - opening_bars, settings.bars)
        elif bundle.position_of[token] >= 0:
            position = int(bundle.position_of[token])
        body.append(token)
        last = token
        # 4. next step: extend the cache, or slide the window when it is full
        if cache.length + 1 > block:
            cache.length = 0
            logits = model(torch.tensor([context()]), cache)[0, -1]
        else:
            logits = model.decode_step(token, cache)
    return body


def decode_body(bundle: ComposerBundle, body: list[int]) -> symusic.Score:
    """Body token ids -> score at 4 ticks per quarter (voices as tracks with program = voice)."""
    return bundle.tokenizer.decode(body)
