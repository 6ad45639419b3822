"""Registry entries for the Music tab: the bundled composer, a debug tiny MusicGen, hub MusicGens."""

from __future__ import annotations

from pathlib import Path

from pipelines.music.composer import ASSET_DIR, ComposerBundle, load_composer
from pipelines.music.musicgen import MusicGenModel, load_musicgen
from pipelines.music.pipeline import TASK, TEXT_TASK
from pipelines.testing import save_tiny_musicgen
from studio.device import DevicePlan
from studio.registry import ModelEntry, ModelRegistry, Source

COMPOSER_ID = "music-composer"
DEBUG_MUSICGEN_ID = "debug-tiny-musicgen"
HUB_SUGGESTIONS = {
    "facebook/musicgen-small": ("MusicGen small (hub, 300M)", 2400),
    "facebook/musicgen-medium": ("MusicGen medium (hub, 1.5B)", 6500),
    "facebook/musicgen-large": ("MusicGen large (hub, 3.3B)", 13000),
}


def apply_plan_to_musicgen(bundle: MusicGenModel, plan: DevicePlan) -> MusicGenModel:
    """LOW/MINIMAL on CPU: int8 weights for the T5 encoder's and the decoder's Linear layers.

    EnCodec (convolutions + LSTM) stays in float. Structured pruning is not applied: it was
    measured on the LM (benchmarks/memory_tiers) and did not pay without fine-tuning.
    """
    if plan.actions.int8_weights and not plan.is_accelerator:
        from pipelines.memory import quantize_int8

        report = quantize_int8(bundle.model)
        bundle.applied.append(report.describe())
    return bundle


def load_hub_musicgen(entry: ModelEntry, plan: DevicePlan) -> MusicGenModel:
    """Any MusicGen hub id or folder, in the plan's dtype on the plan's device."""
    return apply_plan_to_musicgen(load_musicgen(entry.path, plan.dtype, plan.device, entry.display), plan)


def register_music_models(registry: ModelRegistry, data_dir: Path) -> None:
    """Register the music models; nothing is loaded here."""

    def load_bundled(entry: ModelEntry, plan: DevicePlan) -> ComposerBundle:
        return load_composer(ASSET_DIR, entry.id)  # ~2M parameters: CPU fp32 whatever the plan

    def load_debug(entry: ModelEntry, plan: DevicePlan) -> MusicGenModel:
        folder = save_tiny_musicgen(Path(data_dir) / "models" / DEBUG_MUSICGEN_ID)
        return apply_plan_to_musicgen(load_musicgen(folder, label=entry.display), plan)

    registry.register(
        ModelEntry(
            COMPOSER_ID,
            TASK,
            Source.BUNDLED,
            load_bundled,
            approx_mb=8,
            license="MIT (trained here on the public-domain music21 corpus)",
            label="Composer (bundled, trained on Bach chorales, Essen folk songs, O'Neill's tunes)",
            location=str(ASSET_DIR),
        ),
        default=True,
    )
    registry.register(
        ModelEntry(
            DEBUG_MUSICGEN_ID,
            TEXT_TASK,
            Source.BUNDLED,
            load_debug,
            approx_mb=1,
            license="Apache-2.0 (random weights)",
            label="Debug: tiny random MusicGen (makes noise, proves the plumbing)",
        ),
        default=True,
    )
    for hub_id, (label, mb) in HUB_SUGGESTIONS.items():
        registry.register(
            ModelEntry(hub_id, TEXT_TASK, Source.HUB, load_hub_musicgen, mb, "CC-BY-NC-4.0", label)
        )
    registry.set_hub_loader(TEXT_TASK, load_hub_musicgen)
