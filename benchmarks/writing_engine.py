"""`python -m benchmarks writing_engine`: the embedded SmolLM2 on each backend and memory tier.

One JSON line per backend/tier, all loaded in this process and timed in interleaved rounds (the
machine is shared; each round runs every row once, round-robin, so load hits the rows of a round
alike):

- `tokens_per_s`: 128 greedy new tokens (EOS held off) through the app's streaming path
  (`stream_generate`: snapshot streamer and Stop check every token), same prompt for every row;
  median over the rounds (`tokens_per_s_best` beside it);
- `first_token_s`: prompt (chat template, ~60 tokens) to the first new token, median, cold: the
  engine's prompt/KV cache is reset before every timed run (the app reuses it across requests);
- `resident_mb`: process RSS after load + one short generation, minus RSS before the load;
- `teacher_forced_agreement`: top-1 next-token agreement with fp32 transformers at every position of
  the held-out public-domain text (pipelines/writing/heldout.txt, ~1,630 positions); `ppl_ratio`:
  perplexity on that text / fp32's (pipelines.writing.quality). Bounds: >= 0.95 and <= 1.02 for
  every row. `continuation_agreement` beside it: teacher-forced on fp32's own greedy continuations
  of 3 prompts (3 x 64 positions, the figure used before; noisier);
- `speedup_vs_transformers_fp32`: the median over rounds of (tokens/s / fp32 transformers tokens/s
  in the same round), with the per-round ratios in `speedup_rounds`; the default backend's must be
  >= 5.

Rows: transformers fp32 (HIGH/NORMAL) and int8 (LOW, pipelines.memory); llama.cpp as the app loads
it per tier (flash attention; HIGH/NORMAL: a Q8_0 copy of the shipped Q4_1, f16 KV cache; LOW/MINIMAL:
the Q4_1 as shipped, q8_0 KV cache); alternatives: the Q4_1 as shipped with an f16 KV cache, a Q4_0
copy, and CTranslate2 int8 (if `ctranslate2` is installed).
"""

from __future__ import annotations

import gc
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch

from pipelines.memory.plan import apply_plan_to_causal_lm
from pipelines.writing.engine import ENGINE, LlamaCppModel, engine_status, quantize_gguf
from pipelines.writing.gguf import ENGINE_TIERS, gguf_work_dir, load_gguf_engine, quant_of
from pipelines.writing.models import SMOLLM2_GGUF, SMOLLM2_ID, EmbeddedGGUFLoader, smollm2_folder
from pipelines.writing.pipeline import SamplingParams, WritingModel, WritingRequest
from pipelines.writing.prompts import build_prompt, encode_prompt
from pipelines.writing.quality import (
    heldout_ids,
    logits_of,
    quality_against,
    reference_of,
    teacher_forced_agreement,
)
from pipelines.writing.streaming import TextSnapshotStreamer, stream_generate
from studio.device import MemoryInfo, Tier, make_plan
from studio.events import CancelToken
from studio.registry import ModelEntry, Source
from studio.settings import Settings

log = logging.getLogger(__name__)

NEW_TOKENS = 128  # timed generation length
QUALITY_TOKENS = 64  # reference continuation length per prompt
ROUNDS = 5
GOAL_SPEEDUP = 5.0
CHECK_CONTEXT = 2048  # the quality checkers read the whole held-out text in one context
MEMORY = MemoryInfo(24, 20, 24, 20)  # the tier is forced per row; memory only fills the plan
SPEED_REQUEST = WritingRequest("story", "a lighthouse keeper finds a message in a bottle")
QUALITY_REQUESTS = (
    WritingRequest("story", "a lighthouse keeper finds a message in a bottle"),
    WritingRequest("poem", "autumn leaves", form="free verse"),
    WritingRequest("titles", "a blog about urban beekeeping", count=5),
)


@dataclass
class Row:
    name: str
    backend: str
    tier: str
    stream: Callable[[list[int]], tuple[int, float, float | None]]  # ids -> (tokens, seconds, ttft)
    logits_model: Callable[[], Any]  # makes a model for pipelines.writing.quality.logits_of
    resident_mb: float
    applied: str
    default: bool = False
    reset: Callable[[], None] = lambda: None  # forget any cached prompt before a timed run
    times: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def sampling(tokens: int) -> SamplingParams:
    return SamplingParams(temperature=0.0, max_new_tokens=tokens, min_new_tokens=tokens, seed=1)


def app_stream(model: WritingModel) -> Callable[[list[int]], tuple[int, float, float | None]]:
    """The app's own streamed generation (transformers or llama.cpp)."""

    def run(ids: list[int]) -> tuple[int, float, float | None]:
        out = stream_generate(model, ids, sampling(NEW_TOKENS), CancelToken(), lambda text, n: None)
        return out.tokens, out.seconds, out.ttft_s

    return run


# -- rows ------------------------------------------------------------------------------------------


def transformers_rows(reference: WritingModel, reference_mb: float, ids: list[int]) -> list[Row]:
    """fp32 (HIGH/NORMAL) and the LOW tier's int8, both through the app's loader and plan code."""
    rows = [
        Row(
            "transformers fp32",
            "transformers",
            "high/normal",
            app_stream(reference),
            lambda: reference.model,
            reference_mb,
            "fp32",
        )
    ]
    before = rss_mb()
    loader = EmbeddedGGUFLoader(reference_cache(), use_engine=False)
    low = loader(ModelEntry(SMOLLM2_ID, "writing", Source.BUNDLED, loader), make_plan("cpu", MEMORY, "high"))
    applied = "; ".join(apply_plan_to_causal_lm(low.model, make_plan("cpu", MEMORY, "low")))
    app_stream(low)(ids[:8])
    rows.append(
        Row(
            "transformers int8",
            "transformers",
            "low",
            app_stream(low),
            lambda: low.model,
            rss_mb() - before,
            applied,
        )
    )
    return rows


def engine_rows(gguf: Path, work_root: Path, tokenizer: Any, ids: list[int]) -> list[Row]:
    rows = []
    # 1. what the app loads per tier (HIGH == NORMAL and LOW == MINIMAL on the engine)
    for tier, name in ((Tier.HIGH, "high/normal"), (Tier.LOW, "low/minimal")):
        before = rss_mb()
        engine, tok, context, applied = load_gguf_engine(
            gguf, make_plan("cpu", MEMORY, tier.value), work_root
        )
        model = WritingModel(engine, tok, "SmolLM2", context, tuple(applied), ENGINE)
        app_stream(model)(ids[:8])
        resident = rss_mb() - before
        kv = ENGINE_TIERS[tier].kv_cache
        rows.append(
            Row(
                f"llama.cpp {engine.quant}",
                ENGINE,
                name,
                app_stream(model),
                lambda path=engine.path, kv=kv: LlamaCppModel(path, CHECK_CONTEXT, 1, kv, logits_all=True),
                resident,
                applied[0],
                tier is Tier.HIGH,
                engine.reset_cache,
            )
        )
    # 2. alternatives: the shipped Q4_1 with an f16 KV cache (the default before the Q8_0 copy) and
    # a Q4_0 copy (llama.cpp's quantizer from the wheel)
    work = gguf_work_dir(work_root, gguf)
    for quant in ("Q4_1", "Q4_0"):
        path = gguf if quant == quant_of(gguf) else work / f"{gguf.stem}.{quant}.gguf"
        if not path.exists():
            quantize_gguf(gguf, path, quant)
        before = rss_mb()
        engine = LlamaCppModel(path, 8192, 1, "f16", eos_ids=(tokenizer.eos_token_id,))
        model = WritingModel(engine, tokenizer, "SmolLM2", 8192, (engine.describe(),), ENGINE)
        app_stream(model)(ids[:8])
        resident = rss_mb() - before
        rows.append(
            Row(
                f"llama.cpp {quant}" + (" as shipped" if path == gguf else ""),
                ENGINE,
                "alternative",
                app_stream(model),
                lambda path=path: LlamaCppModel(path, CHECK_CONTEXT, 1, "f16", logits_all=True),
                resident,
                engine.describe(),
                reset=engine.reset_cache,
            )
        )
    return rows


class CT2Logits:
    def __init__(self, generator: Any) -> None:
        self.generator = generator

    def logits(self, ids: list[int]) -> np.ndarray:
        return np.array(self.generator.forward_batch([ids]))[0]  # StorageView (CPU) -> [len, vocab]


def ctranslate2_rows(source: Path, work_root: Path, tokenizer: Any) -> list[Row]:
    """CTranslate2 (requirements-dev.txt) on the safetensors cache: int8 and fp32; none if not installed."""
    try:
        import ctranslate2
        from ctranslate2.converters import TransformersConverter
    except ImportError as error:
        log.warning("ctranslate2 rows skipped: %s", error)
        return []
    rows = []
    eos = tokenizer.convert_ids_to_tokens(tokenizer.eos_token_id)
    for quant in ("int8",):  # fp32 measured 12 tokens/s in OFFLINE-ASSETS: no faster than transformers
        folder = work_root / f"ct2-{quant}"
        if not (folder / "model.bin").exists():
            TransformersConverter(str(source)).convert(str(folder), quantization=quant, force=True)
        before = rss_mb()
        generator = ctranslate2.Generator(
            str(folder), device="cpu", compute_type=quant, intra_threads=1, inter_threads=1
        )

        def stream(ids: list[int], generator: Any = generator) -> tuple[int, float, float | None]:
            # CTranslate2's own token iterator, feeding the app's snapshot streamer
            streamer = TextSnapshotStreamer(tokenizer, lambda text, n: None)
            started, first, count = time.perf_counter(), None, 0
            for step in generator.generate_tokens(
                tokenizer.convert_ids_to_tokens(ids),
                max_length=NEW_TOKENS,
                sampling_topk=1,
                repetition_penalty=1.1,
                suppress_sequences=[[eos]],
            ):
                first = first if first is not None else time.perf_counter() - started
                streamer.add([step.token_id])
                count += 1
            streamer.end()
            return count, time.perf_counter() - started, first

        stream(encode_prompt(tokenizer, build_prompt(SPEED_REQUEST))[:8])
        rows.append(
            Row(
                f"ctranslate2 {quant}",
                "ctranslate2",
                "alternative",
                stream,
                lambda generator=generator: CT2Logits(generator),
                rss_mb() - before,
                f"CTranslate2 {ctranslate2.__version__} {quant}",
            )
        )
    return rows


def fp32_greedy_ids(reference: WritingModel, prompt: list[int]) -> list[int]:
    """fp32's own argmax continuation as token ids (no repetition penalty, no decode/re-encode round trip)."""
    with torch.inference_mode():
        ids = torch.tensor([prompt])
        out = reference.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=QUALITY_TOKENS,
            min_new_tokens=QUALITY_TOKENS,
            do_sample=False,
            repetition_penalty=1.0,
            pad_token_id=reference.tokenizer.eos_token_id,
        )
    return out[0, len(prompt) :].tolist()


def reference_cache() -> Path:
    return Settings.from_env().data_dir / "models" / f"{SMOLLM2_ID}-safetensors"


# -- run ---------------------------------------------------------------------------------------------


def run() -> list[dict]:
    torch.set_num_threads(1)
    load_start = ", ".join(f"{x:.1f}" for x in psutil.getloadavg())
    available, reason = engine_status()
    data_dir = Settings.from_env().data_dir
    work_root = data_dir / "models" / "gguf"
    gguf = smollm2_folder() / SMOLLM2_GGUF
    # 1. the fp32 reference, through the app's transformers loader (converts the GGUF once)
    loader = EmbeddedGGUFLoader(reference_cache(), use_engine=False)
    before = rss_mb()
    reference = loader(
        ModelEntry(SMOLLM2_ID, "writing", Source.BUNDLED, loader), make_plan("cpu", MEMORY, "high")
    )
    tokenizer = reference.tokenizer
    ids = encode_prompt(tokenizer, build_prompt(SPEED_REQUEST))
    app_stream(reference)(ids[:8])
    rows = transformers_rows(reference, rss_mb() - before, ids)
    if available:
        rows += engine_rows(gguf, work_root, tokenizer, ids)
    rows += ctranslate2_rows(reference_cache(), work_root, tokenizer)

    # 2. speed: interleaved rounds, every row once per round, cold prompt each time
    for _ in range(ROUNDS):
        for row in rows:
            row.reset()
            tokens, seconds, ttft = row.stream(ids)
            assert tokens == NEW_TOKENS, (row.name, tokens)
            row.times.append(seconds)
            row.ttfts.append(ttft or 0.0)

    # 3. quality on logits: the held-out text (the bound) and fp32's greedy continuations
    heldout = heldout_ids(tokenizer)
    base = reference_of(reference.model, heldout)
    prompts = [encode_prompt(tokenizer, build_prompt(r)) for r in QUALITY_REQUESTS]
    continuations = [fp32_greedy_ids(reference, prompt) for prompt in prompts]
    out_rows: list[dict] = []
    for row in rows:
        model = row.logits_model()
        quality = quality_against(model, base)
        continuation = statistics.mean(
            teacher_forced_agreement(logits_of(model, [*p, *c]), c, len(p))
            for p, c in zip(prompts, continuations, strict=True)
        )
        if isinstance(model, LlamaCppModel):
            model.close()  # its logits buffer is CHECK_CONTEXT x vocab floats
        ratios = [base_s / s for base_s, s in zip(rows[0].times, row.times, strict=True)]
        speedup = statistics.median(ratios)
        out_rows.append(
            {
                "name": row.name,
                "backend": row.backend,
                "tier": row.tier,
                "default": row.default,
                "applied": row.applied,
                "tokens_per_s": round(NEW_TOKENS / statistics.median(row.times), 2),
                "tokens_per_s_best": round(NEW_TOKENS / min(row.times), 2),
                "first_token_s": round(statistics.median(row.ttfts), 4),
                "resident_mb": round(row.resident_mb, 1),
                "teacher_forced_agreement": round(quality.agreement, 4),
                "agreement_positions": quality.positions,
                "continuation_agreement": round(continuation, 4),
                "ppl": round(quality.ppl, 4),
                "ppl_ratio": round(quality.ppl_ratio, 4),
                "quality_ok": quality.ok,
                "speedup_vs_transformers_fp32": round(speedup, 2),
                "speedup_rounds": [round(r, 2) for r in ratios],
                **(
                    {"goal_speedup": GOAL_SPEEDUP, "meets_goal": speedup >= GOAL_SPEEDUP}
                    if row.default
                    else {}
                ),
            }
        )
    load = ", ".join(f"{x:.1f}" for x in psutil.getloadavg())
    out_rows.append(
        {
            "note": f"engine: {reason}; {NEW_TOKENS} greedy tokens, {len(ids)}-token prompt, {ROUNDS} "
            f"interleaved rounds, 1 thread, cold prompt cache; speed-up = median of per-round ratios; "
            f"quality: top-1 agreement and perplexity at {len(base.top1)} held-out positions, "
            f"continuations {len(prompts)}x{QUALITY_TOKENS}; load average (1, 5, 15 min) at the start "
            f"{load_start}, at the end {load}",
        }
    )
    return out_rows
