"""Model registry: small entries, lazy loading, a bound on what stays loaded, and fallback.

An entry says what a model is (id, task, source, approximate memory, license) and how to load it.
Nothing loads at import or at registration. `load(id)` loads on first use and keeps at most
`max_loaded` models (least recently used is dropped). A hub id that is not registered becomes an
ad-hoc entry through the task's `hub_loader`. When a hub or local load fails and the task has an
embedded default, the default is loaded instead and the result carries a notice for the user.

Memory tiers: `set_tier(tier)` overrides the plan's tier for every later load (the UI's tier
dropdown). An out-of-memory error while loading retries once at the next lower tier
(`Tier.lower()`), and `reload_lower(id)` does the same for an OOM during generation; either way
the entry stays at that tier and the result carries a notice.
"""

from __future__ import annotations

import gc
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import torch

from studio.device import DevicePlan, Tier

log = logging.getLogger(__name__)


class Source(StrEnum):
    BUNDLED = "bundled"  # ships in a registry package or in this repo; works offline
    HUB = "hub"  # Hugging Face hub id; needs network the first time
    LOCAL = "local"  # a folder on disk


Loader = Callable[["ModelEntry", DevicePlan], Any]


@dataclass(frozen=True)
class ModelEntry:
    id: str  # registry key; for hub entries the hub id itself
    task: str  # "art", "writing", "music", "style", ...
    source: Source
    loader: Loader  # (entry, plan) -> loaded model object
    approx_mb: int = 0  # resident size estimate, for the memory plan and the UI
    license: str = "unknown"
    label: str = ""  # what the UI shows; defaults to id
    location: str = ""  # hub id or folder the loader reads; defaults to id
    recommended: dict[str, Any] = field(default_factory=dict, compare=False)  # UI defaults, e.g. CFG
    version: str = ""  # version of bundled weights trained by the project (e.g. "2.0"), shown in the UI

    @property
    def display(self) -> str:
        return self.label or self.id

    @property
    def path(self) -> str:
        return self.location or self.id


@dataclass(frozen=True)
class LoadedModel:
    entry: ModelEntry
    model: Any
    notice: str = ""  # non-empty when a fallback happened
    tier: Tier | None = None  # the tier the model was loaded at


def is_oom(error: BaseException) -> bool:
    """torch's accelerator OOM, or the CPU allocator's failure (a plain RuntimeError)."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "can't allocate memory" in str(error)


class ModelLoadError(RuntimeError):
    """The requested model could not be loaded and there was no default to fall back to."""


# "owner/name", "name", or "owner/name/file.gguf" (one GGUF file of a hub repo)
HUB_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}(?:/[\w.-]{1,200}\.gguf)?$")
MAX_PATH_CHARS = 4096  # longer is no folder on any common filesystem


def model_source(model_id: str) -> Source:
    """LOCAL for an existing folder or .gguf file, HUB for a well-formed hub id; anything else is refused up front."""
    if len(model_id) <= MAX_PATH_CHARS:
        try:
            path = Path(model_id).expanduser()
            if path.is_dir() or (
                path.is_file() and path.suffix.lower() == ".gguf"
            ):  # a model folder or GGUF file
                return Source.LOCAL
        except OSError:  # e.g. a path component over the filesystem's name limit
            pass
    if HUB_ID.match(model_id) and ".." not in model_id and "--" not in model_id:
        return Source.HUB
    shown = model_id if len(model_id) <= 60 else model_id[:57] + "..."
    raise ModelLoadError(
        f"'{shown}' is not a model id. Give a Hugging Face id such as 'owner/model-name' (letters, digits, "
        "'-', '_' and '.', at most 96 characters on each side of the '/'), or the path of an existing "
        "model folder."
    )


class ModelRegistry:
    def __init__(self, plan_provider: Callable[[], DevicePlan], max_loaded: int = 2, offline: bool = False):
        self._plan_provider = plan_provider
        self.max_loaded = max(1, max_loaded)
        self.offline = offline
        self._entries: dict[str, ModelEntry] = {}
        self._defaults: dict[str, str] = {}  # task -> embedded default id
        self._hub_loaders: dict[str, Loader] = {}  # task -> loader for arbitrary hub ids
        self._loaded: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.RLock()
        self._tier_override: Tier | None = None  # set from the UI; None = the plan's own tier
        self._entry_tiers: dict[str, Tier] = {}  # tier each loaded entry used (lowered after an OOM)

    @property
    def plan(self) -> DevicePlan:
        plan = self._plan_provider()
        if self._tier_override is not None and self._tier_override is not plan.tier:
            plan = replace(plan, tier=self._tier_override, reason="tier set in the UI")
        return plan

    def plan_at(self, tier: Tier | None) -> DevicePlan:
        """The plan in force with its tier replaced (None = unchanged)."""
        plan = self.plan
        if tier is None or tier is plan.tier:
            return plan
        return replace(plan, tier=tier, reason=f"tier {tier.value} after running out of memory")

    def set_tier(self, tier: Tier | str | None) -> None:
        """Override the tier for later loads ("auto"/None = the plan's); unloads what is loaded."""
        chosen = None if tier in (None, "", "auto") else Tier(str(tier).lower())
        with self._lock:
            self._tier_override = chosen
            self._entry_tiers.clear()
            self.unload_all()

    def tier_of(self, model_id: str) -> Tier | None:
        """The tier a loaded model was loaded at."""
        return self._entry_tiers.get(model_id)

    # -- registration --------------------------------------------------------------------------
    def register(self, entry: ModelEntry, *, default: bool = False) -> None:
        self._entries[entry.id] = entry
        if default:
            self._defaults[entry.task] = entry.id

    def set_hub_loader(self, task: str, loader: Loader) -> None:
        self._hub_loaders[task] = loader

    def entries(self, task: str) -> list[ModelEntry]:
        return [e for e in self._entries.values() if e.task == task]

    def default_id(self, task: str) -> str:
        return self._defaults[task]

    def entry(self, model_id: str, task: str) -> ModelEntry:
        """The registered entry, a local folder, or an ad-hoc hub entry for any hub id."""
        model_id = model_id.strip() or self.default_id(task)
        if model_id in self._entries:
            return self._entries[model_id]
        if task not in self._hub_loaders:
            raise ModelLoadError(f"No loader for {task!r} models like {model_id[:80]!r}")
        source = model_source(model_id)
        return ModelEntry(model_id, task, source, self._hub_loaders[task])

    # -- loading -------------------------------------------------------------------------------
    def load(self, model_id: str, task: str, tier: Tier | None = None) -> LoadedModel:
        """Load (or reuse) a model; an OOM retries one tier lower, other failures fall back to the default.

        `tier` forces a tier for this entry (reloading it if it is loaded at another tier).
        """
        entry = self.entry(model_id, task)
        with self._lock:
            if tier is not None and entry.id in self._loaded and self._entry_tiers.get(entry.id) is not tier:
                self._unload(entry.id)
            try:
                return self._load_with_oom_retry(entry, tier)
            except Exception as error:  # noqa: BLE001 - any load failure may fall back
                default_id = self._defaults.get(task)
                if default_id is None or default_id == entry.id:
                    raise ModelLoadError(f"Could not load {entry.display}: {_short(error)}") from error
                log.warning("loading %s failed (%s); falling back to %s", entry.id, error, default_id)
                default = self._entries[default_id]
                notice = (
                    f"Could not load '{entry.display}' ({_short(error)}). "
                    f"Using the embedded default '{default.display}' instead."
                )
                return LoadedModel(
                    default, self._load_entry(default), notice, self._entry_tiers.get(default.id)
                )

    def _load_with_oom_retry(self, entry: ModelEntry, tier: Tier | None) -> LoadedModel:
        try:
            model = self._load_entry(entry, tier)
            return LoadedModel(entry, model, tier=self._entry_tiers.get(entry.id))
        except Exception as error:  # noqa: BLE001 - only OOM is retried here
            if not is_oom(error):
                raise
            failed = tier or self.plan.tier
            lower = failed.lower()
            if lower is failed:
                raise
            log.warning("out of memory loading %s at tier %s; retrying at %s", entry.id, failed, lower)
            self._free_memory()
            model = self._load_entry(entry, lower)
            notice = (
                f"Out of memory loading '{entry.display}' at tier {failed.value}; "
                f"loaded it at tier {lower.value} instead ({', '.join(_tier_words(lower))})."
            )
            return LoadedModel(entry, model, notice, lower)

    def reload_lower(self, model_id: str, task: str) -> LoadedModel:
        """After an OOM in generation: unload the model and load it one tier lower, with a notice.

        Raises the ModelLoadError when the model is already at the lowest tier.
        """
        entry = self.entry(model_id, task)
        with self._lock:
            current = self._entry_tiers.get(entry.id) or self.plan.tier
            lower = current.lower()
            if lower is current:
                raise ModelLoadError(
                    f"Out of memory running '{entry.display}' even at the {current.value} tier. "
                    "Try a smaller image size or batch, or close other programs."
                )
            self._unload(entry.id)
            self._free_memory()
            loaded = self._load_with_oom_retry(entry, lower)
            notice = (
                f"Out of memory running '{entry.display}' at tier {current.value}; "
                f"retrying once at tier {lower.value} ({', '.join(_tier_words(lower))})."
            )
            return replace(loaded, notice=" ".join(n for n in (notice, loaded.notice) if n))

    def _load_entry(self, entry: ModelEntry, tier: Tier | None = None) -> Any:
        if entry.id in self._loaded:
            self._loaded.move_to_end(entry.id)
            return self._loaded[entry.id]
        if entry.source is Source.HUB and self.offline:
            raise ModelLoadError("offline mode: hub models are disabled")
        # make room first, so two big models never coexist beyond the bound
        while len(self._loaded) >= self.max_loaded:
            self._evict_oldest()
        plan = self.plan_at(tier)
        log.info("loading model %s (%s) at tier %s", entry.id, entry.source.value, plan.tier.value)
        model = entry.loader(entry, plan)
        self._loaded[entry.id] = model
        self._entry_tiers[entry.id] = plan.tier
        return model

    def _evict_oldest(self) -> None:
        evicted, _ = self._loaded.popitem(last=False)
        self._entry_tiers.pop(evicted, None)
        log.info("unloading model %s", evicted)
        self._free_memory()

    def _unload(self, model_id: str) -> None:
        if self._loaded.pop(model_id, None) is not None:
            log.info("unloading model %s", model_id)
        self._entry_tiers.pop(model_id, None)

    @staticmethod
    def _free_memory() -> None:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def unload_all(self) -> None:
        with self._lock:
            while self._loaded:
                self._evict_oldest()

    def peek(self, model_id: str) -> Any | None:
        """The loaded model object for an id, without loading or reordering."""
        return self._loaded.get(model_id)

    def loaded_ids(self) -> list[str]:
        return list(self._loaded)


def _tier_words(tier: Tier) -> list[str]:
    """The memory savers a tier turns on, in words for a notice."""
    from studio.device import TIER_ACTIONS

    names = {
        "attention_slicing": "attention slicing",
        "vae_tiling": "VAE tiling",
        "model_cpu_offload": "CPU offload",
        "sequential_offload": "sequential offload",
        "int8_weights": "int8 weights",
        "prune": "pruning",
    }
    actions = TIER_ACTIONS[tier]
    return [words for field, words in names.items() if getattr(actions, field)] or ["no memory savers"]


def _short(error: BaseException, limit: int = 160) -> str:
    text = f"{type(error).__name__}: {error}".splitlines()[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"
