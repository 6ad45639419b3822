"""StudioContext: the shared objects every page and pipeline receives (no globals)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from studio.device import DevicePlan, apply_threads, plan_for
from studio.jobs import JobBoard
from studio.registry import ModelRegistry
from studio.settings import Settings
from studio.store import OutputStore


@dataclass
class StudioContext:
    settings: Settings
    store: OutputStore
    registry: ModelRegistry
    jobs: JobBoard = field(default_factory=JobBoard)

    @property
    def plan(self) -> DevicePlan:
        """The plan in force: the settings' plan, with the UI's tier override if one is set."""
        return self.registry.plan

    @classmethod
    def create(cls, settings: Settings) -> StudioContext:
        """Build the context; hardware is probed only when a model first loads."""
        apply_threads(settings.threads)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # the index lives in the data dir: the output dir's files may be served, the database never
        store = OutputStore(settings.output_dir, settings.history_path, settings.retention)
        store.repair()  # a crash mid-save leaves at most a file without a row; nothing is serving yet
        registry = ModelRegistry(
            functools.partial(plan_for, settings), settings.max_loaded_models, offline=settings.offline
        )
        return cls(settings, store, registry)
