"""Model registry: small entries, lazy loading, a bound on what stays loaded, and fallback.

An entry says what a model is (id, task, source, approximate memory, license) and how to load it.
Nothing loads at import or at registration. `load(id)` loads on first use and keeps at most
`max_loaded` models (least recently used is dropped). A hub id that is not registered becomes an
ad-hoc entry through the task's `hub_loader`. When a hub or local load fails and the task has an
embedded default, the default is loaded instead and the result carries a notice for the user.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import torch

from studio.device import DevicePlan

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


class ModelLoadError(RuntimeError):
    """The requested model could not be loaded and there was no default to fall back to."""


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

    @property
    def plan(self) -> DevicePlan:
        return self._plan_provider()

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
            raise ModelLoadError(f"No loader for {task!r} models like {model_id!r}")
        source = Source.LOCAL if Path(model_id).expanduser().is_dir() else Source.HUB
        return ModelEntry(model_id, task, source, self._hub_loaders[task])

    # -- loading -------------------------------------------------------------------------------
    def load(self, model_id: str, task: str) -> LoadedModel:
        """Load (or reuse) a model; fall back to the task's embedded default on failure."""
        entry = self.entry(model_id, task)
        with self._lock:
            try:
                return LoadedModel(entry, self._load_entry(entry))
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
                return LoadedModel(default, self._load_entry(default), notice)

    def _load_entry(self, entry: ModelEntry) -> Any:
        if entry.id in self._loaded:
            self._loaded.move_to_end(entry.id)
            return self._loaded[entry.id]
        if entry.source is Source.HUB and self.offline:
            raise ModelLoadError("offline mode: hub models are disabled")
        # make room first, so two big models never coexist beyond the bound
        while len(self._loaded) >= self.max_loaded:
            self._evict_oldest()
        log.info("loading model %s (%s)", entry.id, entry.source.value)
        model = entry.loader(entry, self._plan_provider())
        self._loaded[entry.id] = model
        return model

    def _evict_oldest(self) -> None:
        evicted, _ = self._loaded.popitem(last=False)
        log.info("unloading model %s", evicted)
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


def _short(error: BaseException, limit: int = 160) -> str:
    text = f"{type(error).__name__}: {error}".splitlines()[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"
