from pathlib import Path

import pytest

from auth.github import GithubEmail, GithubMembership, is_active_member, primary_verified_email
from auth.settings import AuthSettings
from shared.errors import Forbidden
from shared.settings import load_settings


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.chdir(tmp_path)  # no .env file here
    for name in ("ALBS_GITHUB_CLIENT_ID", "ALBS_GITHUB_CLIENT_SECRET", "ALBS_GITHUB_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALBS_JWT_SECRET", "x" * 64)
    return monkeypatch


def test_github_login_is_optional_and_defaults_to_github_com(env: pytest.MonkeyPatch) -> None:
    settings = load_settings(AuthSettings)
    assert settings.github_client_id is None
    assert settings.github_client_secret is None
    assert (settings.github_web_url, settings.github_api_url, settings.github_org) == (
        "https://github.com",
        "https://api.github.com",
        "AlmaLinux",
    )


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"ALBS_GITHUB_CLIENT_ID": "Iv1.abc"},
            "ALBS_GITHUB_CLIENT_SECRET: Value error, is required",
        ),
        ({"ALBS_GITHUB_CLIENT_SECRET": "s3cr3t-value"}, "set both or neither"),
        ({"ALBS_GITHUB_API_URL": "api.github.com"}, "ALBS_GITHUB_API_URL: Value error, must be"),
    ],
)
def test_half_a_github_app_or_a_bad_url_stops_the_service(
    env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variables: dict[str, str],
    message: str,
) -> None:
    for name, value in variables.items():
        env.setenv(name, value)
    with pytest.raises(SystemExit):
        load_settings(AuthSettings)
    err = capsys.readouterr().err
    assert message in err
    assert "s3cr3t-value" not in err


def test_base_urls_lose_their_trailing_slash(env: pytest.MonkeyPatch) -> None:
    env.setenv("ALBS_GITHUB_API_URL", "https://ghe.example.org/api/v3/")
    assert load_settings(AuthSettings).github_api_url == "https://ghe.example.org/api/v3"


def email(address: str, *, primary: bool, verified: bool) -> GithubEmail:
    return GithubEmail(email=address, primary=primary, verified=verified)


def test_the_primary_verified_email_wins_wherever_it_is_listed() -> None:
    emails = [
        email("first@x", primary=False, verified=True),
        email("main@x", primary=True, verified=True),
    ]
    assert primary_verified_email(emails) == "main@x"
    with pytest.raises(Forbidden):
        primary_verified_email([email("p@x", primary=True, verified=False)])


def membership(org: str, state: str) -> GithubMembership:
    return GithubMembership.model_validate({"state": state, "organization": {"login": org}})


def test_only_an_active_membership_of_the_org_counts() -> None:
    assert is_active_member([membership("almalinux", "active")], "AlmaLinux")
    assert not is_active_member([membership("AlmaLinux", "pending")], "AlmaLinux")
    assert not is_active_member([membership("AlmaLinux-fork", "active")], "AlmaLinux")
