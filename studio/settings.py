"""Settings: one frozen dataclass read from env vars, overridable by CLI flags.

Every field has an env var STUDIO_<FIELD> (e.g. STUDIO_PORT=7861). CLI flags parsed in app.py
override env vars. Nothing here probes hardware: that happens lazily in studio.device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

_TRUE = {"1", "true", "yes", "on"}


def on_space() -> bool:
    """A Hugging Face Space sets SPACE_ID in the environment."""
    return bool(os.environ.get("SPACE_ID"))


@dataclass(frozen=True)
class Settings:
    host: str = ""  # bind address; "" means 127.0.0.1 locally, 0.0.0.0 on a Space
    port: int = 7860  # HTTP port
    share: bool = False  # gradio share link; never on unless asked
    output_dir: Path = Path("outputs")  # results + history.sqlite; the only folder Gradio serves
    data_dir: Path = Path("data")  # model caches (converted GGUF, debug pipelines); never served
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    tier: str = "auto"  # auto | high | normal | low | minimal
    offline: bool = False  # never touch the hub; embedded defaults only
    threads: int = 1  # torch intra-op threads; 1 is fastest on a shared 2-core box
    max_upload_mb: int = 50  # gradio max_file_size
    auth: str = ""  # "user:password" enables gradio auth
    max_loaded_models: int = 2  # registry keeps at most this many models in memory
    art_model: str = ""  # default Art Platform model id ("" = embedded default)
    writing_model: str = (
        ""  # default Writing Assistant model id ("" = embedded SmolLM2; tests: debug-tiny-gpt2)
    )
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # page-specific knobs

    @property
    def bind_host(self) -> str:
        if self.host:
            return self.host
        return "0.0.0.0" if on_space() else "127.0.0.1"

    @property
    def auth_pair(self) -> tuple[str, str] | None:
        if ":" not in self.auth:
            return None
        user, _, password = self.auth.partition(":")
        return (user, password) if user and password else None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "extra":
                continue
            raw = env.get(f"STUDIO_{f.name.upper()}")
            if raw is None:
                continue
            values[f.name] = _coerce(f.name, raw)
        return cls(**values)

    def with_overrides(self, **overrides: Any) -> Settings:
        """Apply CLI overrides; None means 'not given'."""
        given = {k: _coerce(k, v) if isinstance(v, str) else v for k, v in overrides.items() if v is not None}
        return replace(self, **given)


def _coerce(name: str, raw: str) -> Any:
    default = Settings.__dataclass_fields__[name].default
    if isinstance(default, bool):
        return raw.strip().lower() in _TRUE
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, Path):
        return Path(raw)
    return raw
