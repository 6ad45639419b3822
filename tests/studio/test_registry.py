"""Registry: lazy, bounded, and a failed hub load falls back to the embedded default."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.device import MemoryInfo, make_plan
from studio.registry import ModelEntry, ModelLoadError, ModelRegistry, Source

PLAN = make_plan("cpu", MemoryInfo(24, 20, 24, 20))


def registry_with(loads: list[str], max_loaded: int = 2) -> ModelRegistry:
    registry = ModelRegistry(lambda: PLAN, max_loaded=max_loaded)

    def loader(entry: ModelEntry, plan) -> dict:
        loads.append(entry.id)
        if entry.path.startswith("broken"):
            raise OSError(f"{entry.path} is not reachable")
        return {"id": entry.id}

    registry.register(ModelEntry("default", "art", Source.BUNDLED, loader), default=True)
    registry.register(ModelEntry("b", "art", Source.BUNDLED, loader))
    registry.register(ModelEntry("c", "art", Source.BUNDLED, loader))
    registry.set_hub_loader("art", loader)
    return registry


def test_lazy_and_reused() -> None:
    loads: list[str] = []
    registry = registry_with(loads)
    assert loads == []  # nothing at registration
    registry.load("b", "art")
    registry.load("b", "art")
    assert loads == ["b"]


def test_bound_on_loaded_models() -> None:
    loads: list[str] = []
    registry = registry_with(loads, max_loaded=2)
    for model_id in ["default", "b", "c"]:
        registry.load(model_id, "art")
    assert registry.loaded_ids() == ["b", "c"]


def test_hub_failure_falls_back_with_notice() -> None:
    registry = registry_with([])
    loaded = registry.load("broken/hub-model", "art")
    assert loaded.entry.id == "default"
    assert "broken/hub-model" in loaded.notice and "embedded default" in loaded.notice


def test_default_failure_is_an_error() -> None:
    registry = ModelRegistry(lambda: PLAN)

    def fail(entry, plan):
        raise OSError("gone")

    registry.register(ModelEntry("broken-default", "art", Source.BUNDLED, fail), default=True)
    with pytest.raises(ModelLoadError, match="gone"):
        registry.load("", "art")


def test_offline_mode_refuses_hub_without_network() -> None:
    loads: list[str] = []
    registry = registry_with(loads)
    registry.offline = True
    loaded = registry.load("someone/sd-model", "art")
    assert loaded.entry.id == "default" and "offline" in loaded.notice
    assert "someone/sd-model" not in loads


def test_model_ids_are_checked_up_front() -> None:
    from studio.registry import ModelLoadError, Source, model_source

    assert model_source("stabilityai/sd-turbo") is Source.HUB and model_source("gpt2") is Source.HUB
    assert model_source(str(Path(__file__).parent)) is Source.LOCAL
    for bad in ["x" * 200_000, "a/b/c", "../../etc/passwd", "/no/such/folder", "owner/na me", "🎨/art"]:
        with pytest.raises(
            ModelLoadError, match="is not a model id. Give a Hugging Face id such as 'owner/model-name'"
        ):
            model_source(bad)
