"""`python -m benchmarks writing_engine`: the embedded SmolLM2 on each backend and memory tier.

One JSON line per backend/tier, all loaded in this process and timed round-robin (the machine is
shared; noise hits every row alike):

- `tokens_per_s`: 128 greedy new tokens (EOS held off) through the app's streaming path
  (`stream_generate`: snapshot streamer and Stop check every token), same prompt for every row;
  best of the rounds (noise only adds time), the median beside it;
- `first_token_s`: prompt (chat template, ~60 tokens) to the first new token, median;
- `resident_mb`: process RSS after load + one short generation, minus RSS before the load;
- `teacher_forced_agreement`: top-1 next token vs fp32 transformers on fp32's own greedy
  continuations of 3 prompts (64 tokens each); `ppl_ratio`: perplexity on a held-out public-domain
  text / fp32's (pipelines.writing.quality). Bounds: >= 0.95 and <= 1.02 for every row;
- `speedup_vs_transformers_fp32`: tokens/s / fp32 transformers tokens/s; the default backend's
  must be >= 5.

Rows: transformers fp32 (HIGH/NORMAL) and int8 (LOW, pipelines.memory); llama.cpp as the app loads
it per tier (Q4_1 weights as shipped; f16 KV cache, q8_0 at LOW/MINIMAL); llama.cpp on Q8_0 and
Q4_0 requantized copies; CTranslate2 int8 (if `ctranslate2` is installed).
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
from pipelines.writing.gguf import ENGINE_TIERS, gguf_work_dir, load_gguf_engine
from pipelines.writing.models import SMOLLM2_GGUF, SMOLLM2_ID, EmbeddedGGUFLoader, smollm2_folder
from pipelines.writing.pipeline import SamplingParams, WritingModel, WritingRequest
from pipelines.writing.prompts import build_prompt, encode_prompt
from pipelines.writing.quality import (
    HELDOUT_TEXT,
    MAX_PPL_RATIO,
    MIN_AGREEMENT,
    logits_of,
    perplexity,
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
ROUNDS = 2
GOAL_SPEEDUP = 5.0
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
    logits_model: Any  # for pipelines.writing.quality.logits_of
    resident_mb: float
    applied: str
    default: bool = False
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
            reference.model,
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
            "transformers int8", "transformers", "low", app_stream(low), low.model, rss_mb() - before, applied
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
        checker = LlamaCppModel(engine.path, 1024, 1, kv, logits_all=True)
        rows.append(
            Row(
                f"llama.cpp {engine.quant}",
                ENGINE,
                name,
                app_stream(model),
                checker,
                resident,
                applied[0],
                tier is Tier.HIGH,
            )
        )
    # 2. requantized alternatives (llama.cpp's quantizer from the wheel)
    work = gguf_work_dir(work_root, gguf)
    for quant in ("Q8_0", "Q4_0"):
        path = work / f"{gguf.stem}.{quant}.gguf"
        if not path.exists():
            quantize_gguf(gguf, path, quant)
        before = rss_mb()
        engine = LlamaCppModel(path, 8192, 1, "f16", eos_ids=(tokenizer.eos_token_id,))
        model = WritingModel(engine, tokenizer, "SmolLM2", 8192, (engine.describe(),), ENGINE)
        app_stream(model)(ids[:8])
        resident = rss_mb() - before
        checker = LlamaCppModel(path, 1024, 1, "f16", logits_all=True)
        rows.append(
            Row(
                f"llama.cpp {quant}",
                ENGINE,
                "alternative",
                app_stream(model),
                checker,
                resident,
                engine.describe(),
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
                CT2Logits(generator),
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

    # 2. speed: round-robin over the rows, same prompt and length
    for _ in range(ROUNDS):
        for row in rows:
            tokens, seconds, ttft = row.stream(ids)
            assert tokens == NEW_TOKENS, (row.name, tokens)
            row.times.append(seconds)
            row.ttfts.append(ttft or 0.0)

    # 3. quality on logits: fp32's greedy continuations and the held-out text
    prompts = [encode_prompt(tokenizer, build_prompt(r)) for r in QUALITY_REQUESTS]
    references = [fp32_greedy_ids(reference, prompt) for prompt in prompts]
    heldout = tokenizer(HELDOUT_TEXT, add_special_tokens=False)["input_ids"]
    base_ppl = perplexity(logits_of(reference.model, heldout), heldout)
    base_tps = NEW_TOKENS / min(rows[0].times)
    out_rows: list[dict] = []
    for row in rows:
        agreement = statistics.mean(
            teacher_forced_agreement(logits_of(row.logits_model, [*p, *r]), r, len(p))
            for p, r in zip(prompts, references, strict=True)
        )
        ppl = perplexity(logits_of(row.logits_model, heldout), heldout)
        tps = NEW_TOKENS / min(row.times)
        out_rows.append(
            {
                "name": row.name,
                "backend": row.backend,
                "tier": row.tier,
                "default": row.default,
                "applied": row.applied,
                "tokens_per_s": round(tps, 2),
                "tokens_per_s_median": round(NEW_TOKENS / statistics.median(row.times), 2),
                "first_token_s": round(statistics.median(row.ttfts), 4),
                "resident_mb": round(row.resident_mb, 1),
                "teacher_forced_agreement": round(agreement, 4),
                "ppl": round(ppl, 4),
                "ppl_ratio": round(ppl / base_ppl, 4),
                "quality_ok": agreement >= MIN_AGREEMENT and ppl / base_ppl <= MAX_PPL_RATIO,
                "speedup_vs_transformers_fp32": round(tps / base_tps, 2),
                **(
                    {"goal_speedup": GOAL_SPEEDUP, "meets_goal": tps / base_tps >= GOAL_SPEEDUP}
                    if row.default
                    else {}
                ),
            }
        )
    out_rows.append(
        {
            "note": f"engine: {reason}; {NEW_TOKENS} greedy tokens, {len(ids)}-token prompt, rounds {ROUNDS}, "
            f"1 thread; quality: {len(prompts)}x{QUALITY_TOKENS} teacher-forced tokens, {len(heldout)} held-out tokens",
        }
    )
    return out_rows
