"""The llama.cpp backend on the real embedded SmolLM2 GGUF: streaming, Stop, fallbacks, bad files.

llama.cpp loads the 98 MB GGUF in well under a second and writes ~50 tokens/s on one thread, so
these run on the real model. The first test in a session reads the GGUF's tokenizer (seconds, once
per data dir). Tests that need the fp32 transformers reference (a 30-60 s conversion) are slow.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from pipelines.writing.engine import ENGINE, EngineError, LlamaCppModel, engine_status
from pipelines.writing.gguf import gguf_work_dir, load_gguf_engine, load_gguf_tokenizer
from pipelines.writing.models import (
    SMOLLM2_GGUF,
    SMOLLM2_ID,
    EmbeddedGGUFLoader,
    smollm2_folder,
)
from pipelines.writing.pipeline import SamplingParams, WritingModel, WritingPipeline, WritingRequest
from pipelines.writing.prompts import build_prompt, encode_prompt
from pipelines.writing.streaming import stream_generate
from studio.device import MemoryInfo, make_plan
from studio.events import CancelToken, Finished, Step
from studio.registry import ModelEntry, Source

log = logging.getLogger(__name__)
TASK = "writing"
REPO = Path(__file__).resolve().parents[3]
MEMORY = MemoryInfo(24, 20, 24, 20)

needs_engine = pytest.mark.skipif(
    not engine_status()[0], reason=f"llama.cpp unavailable: {engine_status()[1]}"
)


def greedy(tokens: int, **kw) -> SamplingParams:
    return SamplingParams(**{"temperature": 0.0, "max_new_tokens": tokens, "seed": 1, **kw})


@pytest.fixture(scope="module")
def gguf() -> Path:
    return smollm2_folder() / SMOLLM2_GGUF


@pytest.fixture(scope="module")
def engine_model(gguf: Path, shared_data_dir: Path) -> WritingModel:
    torch.set_num_threads(1)
    engine, tokenizer, context, applied = load_gguf_engine(
        gguf, make_plan("cpu", MEMORY, "high"), shared_data_dir / "models" / "gguf"
    )
    return WritingModel(engine, tokenizer, "SmolLM2", context, tuple(applied), ENGINE)


@needs_engine
def test_the_embedded_entry_runs_on_the_engine_and_streams_to_the_end(ctx) -> None:
    pipeline = WritingPipeline(ctx.registry, ctx.store)
    request = WritingRequest("poem", "the sea", form="haiku", model_id=SMOLLM2_ID, sampling=greedy(24))
    events = list(pipeline.generate(request, CancelToken()))
    result = events[-1].result
    assert isinstance(events[-1], Finished) and result.backend == ENGINE
    loaded = ctx.registry.peek(SMOLLM2_ID)
    assert loaded.backend == ENGINE and loaded.context_length == 8192
    assert "Q8_0 weights" in loaded.applied[0] and "requantized once from Q4_1" in loaded.applied[0]
    steps = [e for e in events if isinstance(e, Step)]
    assert len(steps) >= 2 and steps[-1].preview == result.text and len(result.text.split()) >= 4
    assert all(s.info["backend"] == ENGINE and s.info["tokens_per_s"] > 0 for s in steps)
    assert all(len(a.preview) <= len(b.preview) for a, b in zip(steps, steps[1:], strict=False))
    assert result.tokens <= 24 and result.ttft_s is not None and result.path.read_text(encoding="utf-8")
    assert ctx.store.get(result.record_id).params["backend"] == ENGINE
    log.warning("engine: %d tokens at %.1f tokens/s: %r", result.tokens, result.tokens_per_s, result.text)


@needs_engine
def test_stop_ends_within_one_token(engine_model: WritingModel) -> None:
    cancel, stopped_at = CancelToken(), []

    def on_text(text: str, n_tokens: int) -> None:
        if n_tokens >= 6 and not cancel.cancelled:
            stopped_at.append(n_tokens)
            cancel.cancel()

    ids = encode_prompt(engine_model.tokenizer, build_prompt(WritingRequest("story", "a fox")))
    out = stream_generate(engine_model, ids, greedy(300, min_new_tokens=300), cancel, on_text)
    assert out.stopped and out.tokens <= stopped_at[0] + 1, (out.tokens, stopped_at)


@needs_engine
def test_min_tokens_hold_off_eos_and_the_engine_tokenizer_agrees_with_transformers(
    engine_model: WritingModel,
) -> None:
    """`min_new_tokens` (benchmarks) is honoured; the prompt ids mean the same tokens to both tokenizers."""
    tokenizer, llm = engine_model.tokenizer, engine_model.model.llm
    ids = encode_prompt(tokenizer, build_prompt(WritingRequest("titles", "bees", count=2)))
    out = stream_generate(engine_model, ids, greedy(40, min_new_tokens=40), CancelToken(), lambda t, n: None)
    assert out.tokens == 40
    for text in ("Hello, wörld! 日本語 🐝  tabs\tand\nnewlines", tokenizer.decode(ids)):
        assert (
            llm.tokenize(text.encode(), add_bos=False, special=True)
            == tokenizer(text, add_special_tokens=False)["input_ids"]
        )


@needs_engine
def test_a_shared_prompt_prefix_reuses_the_cache_without_changing_the_text(
    engine_model: WritingModel, gguf: Path
) -> None:
    """Article sections share the system prompt: the KV prefix is kept, and the text is unchanged."""
    tokenizer = engine_model.tokenizer
    first = encode_prompt(tokenizer, build_prompt(WritingRequest("story", "a lighthouse keeper")))
    second = encode_prompt(tokenizer, build_prompt(WritingRequest("story", "a lighthouse on the moon")))
    stream_generate(engine_model, first, greedy(16), CancelToken(), lambda t, n: None)
    reused = stream_generate(engine_model, second, greedy(16), CancelToken(), lambda t, n: None)
    fresh_engine = LlamaCppModel(engine_model.model.path, 2048, 1, eos_ids=(tokenizer.eos_token_id,))
    fresh = WritingModel(fresh_engine, tokenizer, "fresh", 2048, (), ENGINE)
    assert reused.text == stream_generate(fresh, second, greedy(16), CancelToken(), lambda t, n: None).text


@needs_engine
def test_sampling_is_reproducible_for_a_seed(engine_model: WritingModel) -> None:
    ids = encode_prompt(engine_model.tokenizer, build_prompt(WritingRequest("poem", "rain")))
    sampling = SamplingParams(temperature=0.9, top_p=0.9, max_new_tokens=20, seed=7)
    a = stream_generate(engine_model, ids, sampling, CancelToken(), lambda t, n: None)
    b = stream_generate(engine_model, ids, sampling, CancelToken(), lambda t, n: None)
    c = stream_generate(
        engine_model,
        ids,
        SamplingParams(**{**sampling.__dict__, "seed": 8}),
        CancelToken(),
        lambda t, n: None,
    )
    assert a.text == b.text and a.text != c.text


@needs_engine
def test_a_local_gguf_path_loads_on_the_engine_through_the_registry(ctx, gguf: Path, tmp_path: Path) -> None:
    copy = tmp_path / "my-model.Q4_1.gguf"
    shutil.copyfile(gguf, copy)
    loaded = ctx.registry.load(str(copy), TASK)
    assert not loaded.notice and loaded.model.backend == ENGINE


@needs_engine
def test_a_corrupt_gguf_gets_a_clear_message_and_the_app_falls_back(ctx, gguf: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.Q4_1.gguf"
    truncated.write_bytes(gguf.read_bytes()[: 4 * 2**20])  # the header is fine, the tensors are cut off
    not_gguf = tmp_path / "photo.gguf"
    not_gguf.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(4096))
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    plan = make_plan("cpu", MEMORY, "high")
    with pytest.raises(EngineError, match="looks corrupt"):
        LlamaCppModel(truncated, 512)
    with pytest.raises(EngineError, match="Could not read a tokenizer from truncated.Q4_1.gguf"):
        load_gguf_engine(truncated, plan, tmp_path / "work")
    # with its tokenizer already cached, the weights fail: HIGH quantizes a Q8_0 copy, LOW loads it
    load_gguf_tokenizer(gguf, gguf_work_dir(tmp_path / "work", truncated) / "tokenizer")
    for tier in ("high", "low"):
        with pytest.raises(EngineError, match="truncated.Q4_1.gguf.*looks corrupt"):
            load_gguf_engine(truncated, make_plan("cpu", MEMORY, tier), tmp_path / "work")
    for path in (not_gguf, empty):
        with pytest.raises(EngineError, match="not a GGUF model file"):
            load_gguf_engine(path, plan, tmp_path / "work")
    # through the registry: the default model takes over, with the reason in the notice
    ctx.registry.register(ctx.registry.entry("debug-tiny-gpt2", TASK), default=True)
    loaded = ctx.registry.load(str(not_gguf), TASK)
    assert loaded.entry.id == "debug-tiny-gpt2" and "not a GGUF model file" in loaded.notice


@needs_engine
def test_a_damaged_tokenizer_cache_is_rebuilt(gguf: Path, tmp_path: Path) -> None:
    folder = gguf_work_dir(tmp_path, gguf) / "tokenizer"
    first = load_gguf_tokenizer(gguf, folder)
    (folder / "tokenizer.json").write_text("{ not json", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text("{ not json", encoding="utf-8")
    again = load_gguf_tokenizer(gguf, folder)
    assert again("a cat sat")["input_ids"] == first("a cat sat")["input_ids"]
    assert (folder / "tokenizer_config.json").read_text(encoding="utf-8").startswith("{\n")


@needs_engine
def test_the_low_tier_quantizes_the_kv_cache(gguf: Path, shared_data_dir: Path) -> None:
    engine, tokenizer, _, applied = load_gguf_engine(
        gguf, make_plan("cpu", MEMORY, "low"), shared_data_dir / "models" / "gguf"
    )
    assert engine.kv_cache == "q8_0" and "q8_0 KV cache" in applied[0] and engine.path == gguf
    model = WritingModel(engine, tokenizer, "low", 8192, tuple(applied), ENGINE)
    ids = encode_prompt(tokenizer, build_prompt(WritingRequest("poem", "snow")))
    assert (
        stream_generate(model, ids, greedy(12, min_new_tokens=12), CancelToken(), lambda t, n: None).tokens
        == 12
    )


@needs_engine
def test_flash_attention_runs_at_every_tier(gguf: Path, shared_data_dir: Path) -> None:
    import llama_cpp

    for tier in ("high", "low"):
        engine, _, _, _ = load_gguf_engine(
            gguf, make_plan("cpu", MEMORY, tier), shared_data_dir / "models" / "gguf"
        )
        assert engine.llm.context_params.flash_attn_type == llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED, tier
        engine.close()


@needs_engine
def test_reset_cache_makes_the_next_request_cold_and_changes_no_text(engine_model: WritingModel) -> None:
    """The benchmark resets before each timed run, so first_token_s includes the whole prefill."""
    ids = encode_prompt(engine_model.tokenizer, build_prompt(WritingRequest("poem", "frost")))
    warm = stream_generate(engine_model, ids, greedy(8, min_new_tokens=8), CancelToken(), lambda t, n: None)
    llm = engine_model.model.llm
    assert llm.n_tokens >= len(ids)  # the prompt is cached for the next request
    engine_model.model.reset_cache()
    assert llm.n_tokens == 0
    cold = stream_generate(engine_model, ids, greedy(8, min_new_tokens=8), CancelToken(), lambda t, n: None)
    assert cold.text == warm.text


@needs_engine
def test_the_engine_tiers_agree_on_the_heldout_text(gguf: Path, shared_data_dir: Path) -> None:
    """Without the fp32 reference (slow, below): the LOW tier (shipped Q4_1, q8_0 KV cache) against
    HIGH (its Q8_0 copy, f16 KV cache) on every position of the held-out text."""
    from pipelines.writing.quality import heldout_ids, quality_against, reference_of

    checkers = []
    for tier in ("high", "low"):
        engine, tokenizer, _, _ = load_gguf_engine(
            gguf, make_plan("cpu", MEMORY, tier), shared_data_dir / "models" / "gguf"
        )
        checkers.append(LlamaCppModel(engine.path, 2048, 1, engine.kv_cache, logits_all=True))
        engine.close()
    assert [c.quant for c in checkers] == ["Q8_0", "Q4_1"], [c.path for c in checkers]
    ids = heldout_ids(tokenizer)
    assert 1500 <= len(ids) <= 2048, len(ids)
    quality = quality_against(checkers[1], reference_of(checkers[0], ids))
    for checker in checkers:
        checker.close()
    log.warning("LOW vs HIGH tier on %d positions: %s", quality.positions, quality)
    assert quality.positions == len(ids) - 1 and quality.ok, quality


@needs_engine
@pytest.mark.parametrize(("name", "tier", "copy_name"), [
    ("mine.Q4_1.gguf", "high", "mine.Q4_1.Q8_0.gguf"),  # HIGH/NORMAL: the faster Q8_0 copy of a Q4_1
    ("plain.gguf", "low", "plain.Q8_0.gguf"),  # LOW/MINIMAL: a file not already 4-bit, made smaller
])  # fmt: skip
def test_a_damaged_requantized_tier_copy_is_rebuilt(
    gguf: Path, tmp_path: Path, name: str, tier: str, copy_name: str
) -> None:
    """A requantized copy is made once and cached; one that no longer loads is deleted and made again."""
    original = tmp_path / name
    shutil.copyfile(gguf, original)
    plan, work = make_plan("cpu", MEMORY, tier), tmp_path / "work"
    engine, _, _, applied = load_gguf_engine(original, plan, work)
    copy = engine.path
    assert copy.name == copy_name and copy.parent == gguf_work_dir(work, original)
    assert "Q8_0 weights" in applied[0] and "requantized once" in applied[0]
    engine.close()
    copy.write_bytes(copy.read_bytes()[: 2 * 2**20])  # truncated: the header is fine, the tensors are not
    engine, _, _, _ = load_gguf_engine(original, plan, work)
    assert engine.path == copy and copy.stat().st_size > 50 * 2**20
    engine.close()


FALLBACK_SCRIPT = """
    import logging, sys
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    from pathlib import Path
    from pipelines.writing import writing_backend_status
    from pipelines.writing.engine import engine_status
    from pipelines.writing.models import engine_runs
    from studio.device import MemoryInfo, make_plan
    print("STATUS", writing_backend_status())
    print("AVAILABLE", engine_status()[0])
    print("RUNS", engine_runs(make_plan("cpu", MemoryInfo(24, 20, 24, 20), "high")))
    from app import build_app, create_context
    from studio.settings import Settings
    ctx = create_context(Settings(output_dir=Path(sys.argv[1]) / "out", data_dir=Path(sys.argv[1]) / "data", offline=True))
    demo = build_app(ctx)
    tab = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "writing-backend"]
    print("TAB", tab[0].value if tab else None)
"""


def test_when_the_engine_fails_to_import_the_app_says_so_and_uses_transformers(tmp_path: Path) -> None:
    """A real failed import: a `llama_cpp` whose shared library does not load shadows the installed one."""
    broken = tmp_path / "shadow" / "llama_cpp"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text(
        'raise OSError("libllama.so: cannot open shared object file: No such file or directory")\n'
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(broken.parent), str(REPO)])}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FALLBACK_SCRIPT), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
        check=True,
    )
    assert (
        "STATUS Writing engine: transformers (the llama.cpp engine is unavailable: OSError: libllama.so"
        in done.stdout
    )
    assert "AVAILABLE False" in done.stdout and "RUNS False" in done.stdout
    assert "Writing engine: transformers" in done.stderr  # the startup log line of create_context
    assert "TAB Writing engine: transformers (the llama.cpp engine is unavailable" in done.stdout  # the tab


@pytest.mark.slow
def test_without_the_engine_the_embedded_model_writes_on_transformers(shared_data_dir: Path) -> None:
    """The fallback path end to end: the same entry, engine switched off, converted once and generating."""
    loader = EmbeddedGGUFLoader(shared_data_dir / "models" / f"{SMOLLM2_ID}-safetensors", use_engine=False)
    model = loader(ModelEntry(SMOLLM2_ID, TASK, Source.BUNDLED, loader), make_plan("cpu", MEMORY, "high"))
    assert model.backend == "transformers" and model.context_length == 8192
    ids = encode_prompt(model.tokenizer, build_prompt(WritingRequest("poem", "the sea", form="haiku")))
    assert (
        stream_generate(model, ids, greedy(8, min_new_tokens=8), CancelToken(), lambda t, n: None).tokens == 8
    )


@needs_engine
@pytest.mark.slow
def test_engine_quality_against_fp32_transformers(engine_model: WritingModel, shared_data_dir: Path) -> None:
    """Top-1 next-token agreement >= 95% at every position of the held-out text and its perplexity
    within +2% of fp32 transformers, per engine tier (flash attention on, as the app loads it)."""
    from pipelines.writing.quality import heldout_ids, quality_against, reference_of

    loader = EmbeddedGGUFLoader(shared_data_dir / "models" / f"{SMOLLM2_ID}-safetensors", use_engine=False)
    fp32 = loader(ModelEntry(SMOLLM2_ID, TASK, Source.BUNDLED, loader), make_plan("cpu", MEMORY, "high"))
    ids = heldout_ids(fp32.tokenizer)
    assert ids == heldout_ids(engine_model.tokenizer)  # the engine's tokenizer cache reads the same ids
    reference = reference_of(fp32.model, ids)
    assert quality_against(fp32.model, reference).agreement == 1.0
    for tier in ("high", "low"):  # HIGH == NORMAL and LOW == MINIMAL on the engine
        engine, _, _, applied = load_gguf_engine(
            smollm2_folder() / SMOLLM2_GGUF,
            make_plan("cpu", MEMORY, tier),
            shared_data_dir / "models" / "gguf",
        )
        checker = LlamaCppModel(engine.path, 2048, 1, engine.kv_cache, logits_all=True)
        engine.close()
        quality = quality_against(checker, reference)
        checker.close()
        log.warning("engine %s tier (%s): %s", tier, applied[0], quality)
        assert quality.ok, (tier, quality)


@pytest.mark.slow
def test_a_damaged_safetensors_cache_is_converted_again(shared_data_dir: Path, tmp_path: Path) -> None:
    """The transformers fallback's cache, truncated on disk: the next load converts the GGUF again."""
    shared = EmbeddedGGUFLoader(shared_data_dir / "models" / f"{SMOLLM2_ID}-safetensors", use_engine=False)
    shared.convert()  # once per data dir
    cache = tmp_path / "cache"
    shutil.copytree(shared.cache_dir, cache)
    weights = cache / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1_000_000])
    loader = EmbeddedGGUFLoader(cache, use_engine=False)
    model = loader(ModelEntry(SMOLLM2_ID, TASK, Source.BUNDLED, loader), make_plan("cpu", MEMORY, "high"))
    assert model.backend == "transformers" and weights.stat().st_size > 100_000_000
