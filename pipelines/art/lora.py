"""LoRA on diffusers models: load one or more LoRA files with weights, the A1111 way.

Files (a local .safetensors, a folder holding one, or a hub id, optionally `id/file.safetensors`) go
through diffusers' `load_lora_weights` (peft backend) once per model and stay loaded as named
adapters; each request activates its own set with `set_adapters(names, weights)`, and a request
without LoRAs disables them, so the base model's output is exactly unchanged. A file that does not
fit the model is refused with the mismatch named; peft drops the half-loaded adapter and the model
keeps working. PNG `parameters` record them as A1111 does: `<lora:name:weight>` in the prompt.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.events import UserError

log = logging.getLogger(__name__)

MAX_LORAS = 8
TAG = re.compile(r"<lora:([^:>]+)(?::(-?[0-9.]+))?>")  # A1111 prompt syntax


@dataclass(frozen=True)
class LoraSpec:
    source: str  # local .safetensors file, a folder holding one, or a hub id (optionally id/file.safetensors)
    weight: float = 1.0  # 0 = off; 1 = as trained; negative values invert it, as in A1111
    name: str = ""  # the name shown in <lora:name:weight>; default: the file's stem

    @property
    def label(self) -> str:
        return self.name or Path(self.source).stem or self.source


def parse_lora_text(text: str) -> tuple[LoraSpec, ...]:
    """One LoRA per line, `source [weight]` (or `<lora:source:weight>` tags); blank lines ignored."""
    specs: list[LoraSpec] = []
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tags = TAG.findall(line)
        if tags:
            specs += [LoraSpec(source.strip(), _weight(weight or "1")) for source, weight in tags]
            continue
        source, _, weight = line.rpartition(" ")
        if source and _is_number(weight):
            specs.append(LoraSpec(source.strip(), _weight(weight)))
        else:
            specs.append(LoraSpec(line))
    return tuple(specs)


def prompt_loras(prompt: str, lora_dir: Path | None) -> tuple[str, tuple[LoraSpec, ...]]:
    """A1111 `<lora:name:weight>` tags in the prompt -> (prompt without them, specs).

    A name is a path or hub id, or the stem of a .safetensors file in `lora_dir`.
    """
    specs = []
    for name, weight in TAG.findall(prompt):
        source = name.strip()
        if lora_dir is not None and (lora_dir / f"{source}.safetensors").is_file():
            source = str(lora_dir / f"{source}.safetensors")
        specs.append(LoraSpec(source, _weight(weight or "1"), name=name.strip()))
    cleaned = re.sub(r"\s{2,}", " ", TAG.sub("", prompt)).strip(" ,")
    return cleaned, tuple(specs)


def check_loras(specs: Iterable[LoraSpec]) -> None:
    specs = tuple(specs)
    if len(specs) > MAX_LORAS:
        raise UserError(f"At most {MAX_LORAS} LoRAs at once (got {len(specs)}).")
    for spec in specs:
        if not spec.source.strip():
            raise UserError("A LoRA entry is empty: give a .safetensors path or a hub id.")
        if not -4.0 <= spec.weight <= 4.0:
            raise UserError(f"LoRA weight must be between -4 and 4 (got {spec.weight} for {spec.label}).")


def lora_tags(specs: Iterable[LoraSpec]) -> str:
    return " ".join(f"<lora:{spec.label}:{spec.weight:g}>" for spec in specs)


def supports_lora(pipe: Any) -> bool:
    return hasattr(pipe, "load_lora_weights") and hasattr(pipe, "set_adapters")


def apply_loras(pipe: Any, specs: tuple[LoraSpec, ...]) -> None:
    """Make exactly `specs` active on `pipe` (shared weights: every view of it sees the same)."""
    loaded: dict[str, str] = pipe.__dict__.setdefault("_studio_loras", {})  # source -> adapter name
    if not specs:
        if loaded:
            pipe.disable_lora()
        return
    for spec in specs:
        if spec.source not in loaded:
            loaded[spec.source] = _load(pipe, spec, f"lora{len(loaded)}_{_slug(spec.label)}")
    pipe.enable_lora()
    names = [loaded[spec.source] for spec in specs]
    pipe.set_adapters(names, adapter_weights=[float(spec.weight) for spec in specs])


def _load(pipe: Any, spec: LoraSpec, adapter: str) -> str:
    source, kwargs = _resolve(spec.source)
    try:
        pipe.load_lora_weights(source, adapter_name=adapter, **kwargs)
    except (RuntimeError, ValueError, KeyError) as error:
        _drop(pipe, adapter)
        raise UserError(f"The LoRA '{spec.label}' does not fit this model: {_mismatch(error)}") from None
    except OSError as error:
        _drop(pipe, adapter)
        raise UserError(f"The LoRA '{spec.label}' could not be read or downloaded ({error}).") from None
    adapters = {name for names in pipe.get_list_adapters().values() for name in names}
    if adapter not in adapters:
        raise UserError(
            f"The LoRA '{spec.label}' matches no layer of this model (made for another model family?)."
        )
    return adapter


def _resolve(source: str) -> tuple[str, dict[str, Any]]:
    """A file path loads directly; a hub `owner/name/file.safetensors` names the file to fetch."""
    path = Path(source).expanduser()
    if path.exists():
        return str(path), {}
    parts = source.split("/")
    if len(parts) >= 3 and parts[-1].endswith(".safetensors"):
        return "/".join(parts[:2]), {"weight_name": "/".join(parts[2:])}
    if source.endswith(".safetensors") or source.startswith(("/", ".", "~")):
        raise OSError(f"no such file: {source}")
    return source, {}


def _drop(pipe: Any, adapter: str) -> None:
    """Remove whatever part of a failed adapter was injected, so the model works as before."""
    present = {name for names in pipe.get_list_adapters().values() for name in names}
    if adapter in present:
        pipe.delete_adapters(adapter)


def _mismatch(error: Exception) -> str:
    text = str(error)
    match = re.search(
        r"size mismatch for ([^:]+): copying a param with shape (.+?) from checkpoint, "
        r"the shape in current model is (.+?)\.",
        text,
    )
    if match:
        count = text.count("size mismatch for")
        layer, theirs, ours = match.groups()
        layer = layer.replace(".lora_A", "").replace(".lora_B", "").rsplit(".", 2)[0]
        return (
            f"layer {layer} has shape {ours.replace('torch.Size', '')} here but "
            f"{theirs.replace('torch.Size', '')} in the file ({count} tensors differ); "
            "it was trained for a different base model."
        )
    return text.splitlines()[0][:300] if text else type(error).__name__


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)[:40] or "lora"


def _weight(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UserError(f"LoRA weight must be a number (got {text!r}).") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
