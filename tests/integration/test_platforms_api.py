"""Platforms end to end: gateway -> RPC -> scheduler -> PostgreSQL, and reads back."""

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import func, select

from shared.db.models import Platform, Repository
from shared.db.session import SessionFactory
from tests.support.stack import TokenMaker, bearer

# A copy of the real AlmaLinux-8 definition (shared/reference/platforms.yaml of the design).
REFERENCE_PLATFORM = Path(__file__).parent / "data" / "platforms.yaml"
URL = "/api/v1/platforms/"

pytestmark = pytest.mark.usefixtures("clean_db")


def reference_platform() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(REFERENCE_PLATFORM.read_text())
    return loaded


@pytest.fixture
async def admin(make_token: TokenMaker) -> dict[str, str]:
    return bearer(await make_token("root", admin=True))


async def count(sessions: SessionFactory, model: type[Platform] | type[Repository]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_reference_platform_is_created_and_reads_back_identically(
    api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    body = reference_platform()
    created = await api.post(URL, json=body, headers=admin)
    assert created.status_code == 200, created.text
    summary = created.json()
    assert summary == {"id": summary["id"], "name": "AlmaLinux-8", "arch_list": body["arch_list"]}

    listed = await api.get(URL, headers=admin)
    assert listed.json() == [summary]

    detail = (await api.get(f"{URL}{summary['id']}/", headers=admin)).json()
    expected_repos = [{**repo, "production": False} for repo in body["repos"]]
    assert detail == {**body, "id": summary["id"], "repos": expected_repos}


async def test_duplicate_name_is_409_and_writes_nothing(
    api: httpx.AsyncClient, admin: dict[str, str], sessions: SessionFactory
) -> None:
    assert (await api.post(URL, json=reference_platform(), headers=admin)).status_code == 200
    repos_before = await count(sessions, Repository)
    again = await api.post(URL, json=reference_platform(), headers=admin)
    assert again.status_code == 409
    assert again.json() == {"detail": "Platform 'AlmaLinux-8' already exists."}
    assert await count(sessions, Platform) == 1
    assert await count(sessions, Repository) == repos_before


async def test_missing_field_is_422_naming_it(
    api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    body = reference_platform()
    del body["arch_list"]
    answer = await api.post(URL, json=body, headers=admin)
    assert answer.status_code == 422
    assert [e["loc"] for e in answer.json()["detail"]] == [["body", "arch_list"]]


async def test_same_repo_twice_in_one_request_is_422(
    api: httpx.AsyncClient, admin: dict[str, str], sessions: SessionFactory
) -> None:
    body = reference_platform()
    body["repos"].append(dict(body["repos"][0]))
    answer = await api.post(URL, json=body, headers=admin)
    assert answer.status_code == 422
    assert "alma8-baseos" in answer.json()["detail"]
    assert await count(sessions, Platform) == 0


async def test_only_admins_create_or_modify(
    api: httpx.AsyncClient, make_token: TokenMaker, sessions: SessionFactory
) -> None:
    user = bearer(await make_token("alice"))
    assert (await api.post(URL, json=reference_platform(), headers=user)).status_code == 403
    assert (await api.put(URL, json={"name": "AlmaLinux-8"}, headers=user)).status_code == 403
    assert (await api.get(URL, headers=user)).status_code == 200
    assert await count(sessions, Platform) == 0


async def test_no_token_is_403(api: httpx.AsyncClient) -> None:
    for answer in (
        await api.get(URL),
        await api.post(URL, json=reference_platform()),
        await api.put(URL, json={"name": "x"}),
    ):
        assert answer.status_code == 403
        assert answer.json() == {"detail": "Not authenticated"}


async def test_modify_unknown_platform_is_404(
    api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    answer = await api.put(URL, json={"name": "Nope-9"}, headers=admin)
    assert answer.status_code == 404
    assert answer.json() == {"detail": "Platform 'Nope-9' is not found."}


async def test_modify_without_repos_keeps_them(
    api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    platform_id = (await api.post(URL, json=reference_platform(), headers=admin)).json()["id"]
    answer = await api.put(
        URL,
        json={"name": "AlmaLinux-8", "distr_version": "8.5", "arch_list": ["x86_64"]},
        headers=admin,
    )
    assert answer.json() == {"id": platform_id, "name": "AlmaLinux-8", "arch_list": ["x86_64"]}
    detail = (await api.get(f"{URL}{platform_id}/", headers=admin)).json()
    assert detail["distr_version"] == "8.5"
    assert len(detail["repos"]) == len(reference_platform()["repos"])


async def test_modify_reconciles_repos_by_name_arch_and_type(
    api: httpx.AsyncClient, admin: dict[str, str], sessions: SessionFactory
) -> None:
    body = reference_platform()
    platform_id = (await api.post(URL, json=body, headers=admin)).json()["id"]
    # alma8-baseos exists for i686 and x86_64: change only the x86_64 one, drop the i686 one.
    repos = [r for r in body["repos"] if not (r["name"] == "alma8-baseos" and r["arch"] == "i686")]
    for repo in repos:
        if repo["name"] == "alma8-baseos":
            repo["url"] = "https://mirror.example.org/baseos/x86_64/"
    repos.append(
        {"name": "extras", "arch": "x86_64", "url": "https://e.example.org/", "type": "rpm"}
    )

    answer = await api.put(URL, json={"name": "AlmaLinux-8", "repos": repos}, headers=admin)
    assert answer.status_code == 200, answer.text

    detail = (await api.get(f"{URL}{platform_id}/", headers=admin)).json()
    stored = {(r["name"], r["arch"]): r["url"] for r in detail["repos"]}
    assert stored[("alma8-baseos", "x86_64")] == "https://mirror.example.org/baseos/x86_64/"
    assert ("alma8-baseos", "i686") not in stored
    assert stored[("extras", "x86_64")] == "https://e.example.org/"
    assert len(stored) == len(repos)
    assert await count(sessions, Repository) == len(repos)  # the dropped repo is gone


async def test_list_is_paginated(api: httpx.AsyncClient, admin: dict[str, str]) -> None:
    for n in range(3):
        body = {**reference_platform(), "name": f"P-{n}", "repos": []}
        assert (await api.post(URL, json=body, headers=admin)).status_code == 200
    page = (await api.get(URL, params={"limit": 2, "offset": 1}, headers=admin)).json()
    assert [p["name"] for p in page] == ["P-1", "P-2"]
    assert (await api.get(URL, params={"limit": 0}, headers=admin)).status_code == 422
