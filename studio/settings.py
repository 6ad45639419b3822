"""Settings: one frozen dataclass read from env vars, overridable by CLI flags.

Every field has an env var STUDIO_<FIELD> (e.g. STUDIO_PORT=7861). CLI flags parsed in app.py
override env vars. Nothing here probes hardware: that happens lazily in studio.device.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from studio.retention import GB, MB, CachePolicy, RetentionPolicy

_TRUE = {"1", "true", "yes", "on"}
SCOPES = ("auto", "all", "session", "user")


def on_space() -> bool:
    """A Hugging Face Space sets SPACE_ID in the environment."""
    return bool(os.environ.get("SPACE_ID"))


@dataclass(frozen=True)
class Settings:
    host: str = ""  # bind address; "" means 127.0.0.1 locally, 0.0.0.0 on a Space
    port: int = 7860  # HTTP port
    share: bool = False  # gradio share link; never on unless asked
    output_dir: Path = Path("outputs")  # results (served only through per-session links) + upload cache
    data_dir: Path = Path("data")  # history.sqlite and model caches; never served
    history_db: Path | None = None  # the History index; default: one per output dir under <data_dir>/history/
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    tier: str = "auto"  # auto | high | normal | low | minimal
    offline: bool = False  # never touch the hub; embedded defaults only
    threads: int = 1  # torch intra-op threads; 1 is fastest on a shared 2-core box
    max_upload_mb: int = 50  # gradio max_file_size
    auth: str = ""  # "user:password[,user2:password2...]" enables gradio auth; History is then per user
    max_loaded_models: int = 2  # registry keeps at most this many models in memory
    art_model: str = ""  # default Art Platform model id ("" = embedded default)
    writing_model: str = (
        ""  # default Writing Assistant model id ("" = embedded SmolLM2; tests: debug-tiny-gpt2)
    )
    # bounded disk; a negative value means "the default": generous locally, tighter on a Space
    keep_days: float = -1.0  # results older than this are removed, pinned ones kept (0 = forever)
    max_output_gb: float = -1.0  # total size of unpinned results; oldest removed first (0 = no limit)
    upload_cache_mb: float = -1.0  # Gradio's upload cache is swept down to this size (0 = no limit)
    upload_max_age_h: float = -1.0  # cached uploads older than this are removed (0 = no age limit)
    big_upload_mb: float = 8.0  # uploads at least this big are removed as soon as their job ends
    history_scope: str = "auto"  # auto | all | session | user: whose results History lists (see below)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # page-specific knobs

    def __post_init__(self) -> None:
        if self.history_scope not in SCOPES:
            raise ValueError(f"history_scope must be one of {', '.join(SCOPES)}, not {self.history_scope!r}")

    @property
    def bind_host(self) -> str:
        if self.host:
            return self.host
        return "0.0.0.0" if on_space() else "127.0.0.1"

    @property
    def upload_dir(self) -> Path:
        """Gradio's upload and file cache (GRADIO_TEMP_DIR): inside the output dir, swept by size and age."""
        return Path(self.output_dir) / ".gradio"

    @property
    def history_path(self) -> Path:
        """The History database: never inside the output dir. Its rows point into one output dir, so
        each output dir gets its own file under the data dir unless STUDIO_HISTORY_DB says otherwise."""
        if self.history_db:
            return Path(self.history_db)
        root = Path(self.output_dir).resolve()
        digest = hashlib.sha1(str(root).encode()).hexdigest()[:10]
        return Path(self.data_dir) / "history" / f"{_slug(root.name)}-{digest}.sqlite"

    @property
    def retention(self) -> RetentionPolicy:
        keep = _default(self.keep_days, local=365.0, space=14.0)
        gb = _default(self.max_output_gb, local=20.0, space=5.0)
        return RetentionPolicy(keep_days=keep, max_bytes=int(gb * GB))

    @property
    def upload_cache(self) -> CachePolicy:
        mb = _default(self.upload_cache_mb, local=2048.0, space=1024.0)
        hours = _default(self.upload_max_age_h, local=24.0, space=2.0)
        return CachePolicy(int(mb * MB), hours * 3600.0, int(self.big_upload_mb * MB))

    @property
    def scope(self) -> str:
        """Whose results History shows and serves: everyone's (a local, single-user app), the
        logged-in user's (auth on), or only this browser session's (a public Space without auth)."""
        if self.history_scope != "auto":
            return self.history_scope
        if self.auth_pair:
            return "user"
        return "session" if on_space() else "all"

    @property
    def auth_pairs(self) -> list[tuple[str, str]]:
        """Every "user:password" of STUDIO_AUTH (several separated by commas); [] = no login."""
        pairs = []
        for item in self.auth.split(","):
            user, sep, password = item.strip().partition(":")
            if sep and user and password:
                pairs.append((user, password))
        return pairs

    @property
    def auth_pair(self) -> tuple[str, str] | None:
        """The first login pair (kept for callers that expect one user)."""
        return self.auth_pairs[0] if self.auth_pairs else None

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


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "outputs"


def _default(value: float, local: float, space: float) -> float:
    """A negative setting means "use the default", which is tighter on a public Space."""
    if value >= 0:
        return value
    return space if on_space() else local


def _coerce(name: str, raw: str) -> Any:
    default = Settings.__dataclass_fields__[name].default
    if isinstance(default, bool):
        return raw.strip().lower() in _TRUE
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, Path) or name == "history_db":
        return Path(raw)
    return raw
