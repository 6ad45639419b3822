"""Load a GGUF writing model on the llama.cpp engine: tokenizer cache, memory-tier variants, rebuilds.

Per GGUF file a work folder under the data dir holds what is derived from it, each written to a
private name and renamed, and rebuilt once if it turns out unreadable:

- `tokenizer/`: the transformers tokenizer read from the GGUF (a few CPU seconds, once), which
  builds the prompts (chat template, context fitting) and decodes the streamed snapshots;
- `<name>.<QUANT>.gguf`: a requantized copy when the memory tier asks for one (llama.cpp's own
  quantizer, in the wheel).

Memory tiers on the engine (measured in `python -m benchmarks writing_engine`):

- HIGH/NORMAL run for speed: a Q4_1 file (the embedded SmolLM2) runs from a Q8_0 copy of itself,
  requantized once (under a second): the same values on an 8-bit grid, held-out agreement and
  perplexity as the Q4_1 (docs/WRITING_ENGINES.md), and llama.cpp's 8-bit kernels here ran it 1.3x
  the tokens/s with half the time to the first token. Other files run as shipped;
- LOW/MINIMAL run for memory: the weights stay as shipped when they are already 4-bit (else a
  Q8_0 copy), and the KV cache drops to 8 bits.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipelines.writing.engine import ENGINE, EngineError, LlamaCppModel, check_gguf, quantize_gguf
from studio.device import DevicePlan, Tier

log = logging.getLogger(__name__)

MAX_ENGINE_CONTEXT = 8192  # positions the engine allocates at most (the KV cache grows with it)
SMALL_ENOUGH = ("Q4_0", "Q4_1", "Q4_K", "Q3_K", "Q2_K", "IQ")  # already 4-bit or less: never requantized


FASTER_COPY = {"Q4_1": "Q8_0"}  # shipped quant -> the copy that runs faster at the same quality


@dataclass(frozen=True)
class EngineTier:
    kv_cache: str  # "f16" | "q8_0"
    weights: str  # "fast": FASTER_COPY where it applies; "small": 4-bit as shipped, else Q8_0


ENGINE_TIERS = {
    Tier.HIGH: EngineTier("f16", "fast"),
    Tier.NORMAL: EngineTier("f16", "fast"),
    Tier.LOW: EngineTier("q8_0", "small"),
    Tier.MINIMAL: EngineTier("q8_0", "small"),
}


def quant_of(path: Path) -> str:
    """The quantization named in a GGUF file name (`model.Q4_1.gguf` -> "Q4_1"), or "" when absent."""
    parts = path.name.upper().split(".")
    return parts[-2] if len(parts) >= 3 else ""


def gguf_work_dir(root: Path, path: Path) -> Path:
    """A folder for what is derived from `path`, keyed by its name and size (a new file, a new key)."""
    return Path(root) / f"{path.stem}-{path.stat().st_size}"


def load_gguf_tokenizer(gguf: Path, folder: Path) -> Any:
    """The transformers tokenizer of a GGUF, cached as a plain tokenizer folder (rebuilt if unreadable)."""
    from transformers import AutoTokenizer

    if (folder / "tokenizer_config.json").exists():
        try:
            return AutoTokenizer.from_pretrained(folder)
        except (OSError, ValueError) as error:
            log.warning("the tokenizer cache %s is unreadable (%s); rebuilding it", folder, error)
            shutil.rmtree(folder, ignore_errors=True)
    log.info("reading the tokenizer of %s (once)", gguf.name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except (OSError, ValueError, KeyError) as error:
        raise EngineError(f"Could not read a tokenizer from {gguf.name}: {error}") from None
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    tokenizer.save_pretrained(partial)
    folder.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(partial, folder)
    return tokenizer


def tier_quant(gguf: Path, tier: EngineTier) -> str | None:
    """The quant of the copy this tier loads, or None to load the file as shipped."""
    shipped = quant_of(gguf)
    if tier.weights == "fast":
        return FASTER_COPY.get(shipped)
    return None if shipped.startswith(SMALL_ENOUGH) or shipped == "Q8_0" else "Q8_0"


def tier_weights(gguf: Path, work: Path, tier: EngineTier) -> Path:
    """The GGUF to load at this tier: the file itself, or its cached requantized copy."""
    quant = tier_quant(gguf, tier)
    if quant is None:
        return gguf
    target = work / f"{gguf.stem}.{quant}.gguf"
    if not target.exists():
        quantize_gguf(gguf, target, quant, threads=torch.get_num_threads())
    return target


def open_engine(gguf: Path, work: Path, plan: DevicePlan, eos_ids: tuple[int, ...]) -> LlamaCppModel:
    """Load the tier's weights; a derived file that fails to load is deleted and rebuilt once."""
    check_gguf(gguf)
    tier = ENGINE_TIERS[plan.tier]
    for attempt in range(2):
        weights = tier_weights(gguf, work, tier)
        try:
            engine = LlamaCppModel(
                weights, MAX_ENGINE_CONTEXT, torch.get_num_threads(), tier.kv_cache, eos_ids
            )
            if 0 < engine.trained_context < MAX_ENGINE_CONTEXT:  # never read past what the model learnt
                engine.close()
                engine = LlamaCppModel(
                    weights, engine.trained_context, engine.threads, tier.kv_cache, eos_ids
                )
            return engine
        except EngineError:
            if weights == gguf or attempt:
                raise  # the original file itself is bad: nothing to rebuild from
            log.warning("the cached %s does not load; rebuilding it from %s", weights.name, gguf.name)
            weights.unlink(missing_ok=True)
    raise AssertionError("unreachable")


def load_gguf_engine(
    gguf: Path, plan: DevicePlan, work_root: Path
) -> tuple[LlamaCppModel, Any, int, list[str]]:
    """(engine model, tokenizer, context length, applied actions) for a GGUF file on llama.cpp."""
    check_gguf(gguf)
    work = gguf_work_dir(work_root, gguf)
    tokenizer = load_gguf_tokenizer(gguf, work / "tokenizer")
    eos = tuple(t for t in (tokenizer.eos_token_id,) if t is not None)
    engine = open_engine(gguf, work, plan, eos)
    applied = [engine.describe()]
    if engine.path != gguf:
        applied[0] += f" (requantized once from {quant_of(gguf) or gguf.name})"
    log.info("loaded %s on %s: %s", gguf.name, ENGINE, applied[0])
    return engine, tokenizer, engine.llm.n_ctx(), applied
