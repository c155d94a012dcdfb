from pathlib import Path

import pytest

from api_gateway.settings import GatewaySettings
from shared.settings import load_settings


def test_missing_secret_is_a_clear_startup_error(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env file here
    monkeypatch.delenv("ALBS_JWT_SECRET", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        load_settings(GatewaySettings)
    assert exit_info.value.code == 2
    assert "ALBS_JWT_SECRET is required but not set" in capsys.readouterr().err


def test_weak_secret_is_refused(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALBS_JWT_SECRET", "changeme")
    with pytest.raises(SystemExit):
        load_settings(GatewaySettings)
    err = capsys.readouterr().err
    assert "ALBS_JWT_SECRET" in err
    assert "changeme" not in err  # the rejected value itself is never printed


def test_defaults_point_at_local_servers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("ALBS_DATABASE_URL", "ALBS_AMQP_URL", "ALBS_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALBS_JWT_SECRET", "x" * 64)
    settings = load_settings(GatewaySettings)
    assert "127.0.0.1:5432" in settings.database_url
    assert settings.amqp_url == "amqp://guest:guest@127.0.0.1:5672/"
    assert settings.redis_url.startswith("redis://127.0.0.1:6379")
    assert "x" * 64 not in repr(settings)
