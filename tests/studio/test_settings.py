from __future__ import annotations

from pathlib import Path

import pytest

from studio.settings import Settings


def test_env_then_cli_overrides() -> None:
    settings = Settings.from_env(
        {"STUDIO_PORT": "9000", "STUDIO_OFFLINE": "yes", "STUDIO_OUTPUT_DIR": "/tmp/x"}
    )
    assert settings.port == 9000 and settings.offline and settings.output_dir == Path("/tmp/x")
    settings = settings.with_overrides(port=9100, device=None, tier="low")
    assert settings.port == 9100 and settings.device == "auto" and settings.tier == "low"


def test_bind_host_local_vs_space(monkeypatch) -> None:
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert Settings().bind_host == "127.0.0.1"
    monkeypatch.setenv("SPACE_ID", "user/creative-studio")
    assert Settings().bind_host == "0.0.0.0"
    assert Settings(host="10.0.0.5").bind_host == "10.0.0.5"
    assert Settings().share is False


def test_auth_pair() -> None:
    assert Settings(auth="ana:secret").auth_pair == ("ana", "secret")
    assert Settings(auth="nopassword").auth_pair is None
    assert Settings().auth_pair is None


def test_several_logins_and_a_bad_scope() -> None:
    settings = Settings(auth="ana:pw1, bob:pw2,broken")
    assert settings.auth_pairs == [("ana", "pw1"), ("bob", "pw2")] and settings.auth_pair == ("ana", "pw1")
    with pytest.raises(ValueError, match="history_scope"):
        Settings(history_scope="everyone")
