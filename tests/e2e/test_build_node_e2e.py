"""A build of two refs on two arches, driven over HTTP exactly like albs-node does it.

The node polls get_task with a GET body, pings while it builds, uploads real RPMs and a
log to Pulp (upload, chunked PUT with Content-Range, commit, task poll), reports
build_done with the artifact hrefs; the build completes and its packages are in Pulp.
The test logs in to Pulp once where albs-node sends basic auth on every request: the same
calls, without Pulp hashing the password for each (tests/support/pulp_node.py).
"""

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from shared.db.models import UserKind
from tests.support.artifacts import repo_content, served_packages
from tests.support.live_stack import LiveStack
from tests.support.nodes import build_done, get_task, pinging
from tests.support.pulp_node import upload_artifact
from tests.support.rpms import RpmFactory
from tests.support.waiting import eventually

REFERENCE_PLATFORM = Path(__file__).parents[1] / "integration" / "data" / "platforms.yaml"
REFS = [
    ("albs-hello", "https://git.example.org/rpms/albs-hello.git"),
    ("albs-world", "https://git.example.org/rpms/albs-world.git"),
]
ARCHES = ["x86_64", "i686"]

pytestmark = [pytest.mark.e2e, pytest.mark.pulp]


async def build_one(
    client: httpx.AsyncClient,
    pulp: httpx.AsyncClient,
    node: dict[str, str],
    task: dict[str, Any],
    rpms: RpmFactory,
    tmp_path: Path,
) -> list[dict[str, str]]:
    name = next(n for n, url in REFS if url == task["ref"]["url"])
    packages = rpms(name=name, arch=task["arch"])
    log = tmp_path / f"albs.{task['id']}.log"
    log.write_text(f"built task {task['id']} for {task['arch']}\n")
    async with pinging(client, node, task["id"]):
        artifacts = [
            {"name": path.name, "type": "rpm", "href": await upload_artifact(pulp, path)}
            for path in packages.all
        ]
        artifacts.append(
            {"name": log.name, "type": "build_log", "href": await upload_artifact(pulp, log)}
        )
    return artifacts


async def test_albs_node_builds_a_build_to_completion_and_the_packages_are_in_pulp(
    live_stack: LiveStack,
    rpms: RpmFactory,
    pulp_http: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    admin = await live_stack.token("e2e-admin", admin=True)
    user = await live_stack.token("e2e-user")
    node = await live_stack.token("e2e-node", kind=UserKind.NODE)
    async with httpx.AsyncClient(base_url=live_stack.gateway_url, timeout=60) as client:
        platform = yaml.safe_load(REFERENCE_PLATFORM.read_text())
        assert (
            await client.post("/api/v1/platforms/", json=platform, headers=admin)
        ).status_code == 200
        body = {
            "platforms": [{"name": platform["name"], "arch_list": ARCHES}],
            "tasks": [{"url": url, "git_ref": "1.0-1"} for _, url in REFS],
            "linked_builds": [],
            "mock_options": {},
        }
        build = (await client.post("/api/v1/builds/", json=body, headers=user)).json()

        for _ in build["tasks"]:

            async def next_task() -> dict[str, Any] | None:
                return await get_task(client, node, ARCHES)

            task = await eventually(next_task, timeout=120, every=0.5)
            assert task is not None
            assert [r["name"] for r in task["repositories"]][:3] == [
                "alma8-baseos",
                "alma8-appstream",
                "alma8-powertools",
            ]
            artifacts = await build_one(client, pulp_http, node, task, rpms, tmp_path)
            answer = await build_done(client, node, task["id"], "done", artifacts)
            assert (answer.status_code, answer.json()) == (200, {"ok": True}), live_stack.logs()

        async def completed() -> dict[str, Any] | None:
            view: dict[str, Any] = (
                await client.get(f"/api/v1/builds/{build['id']}/", headers=user)
            ).json()
            return view if view["status"] in ("completed", "failed") else None

        view = await eventually(completed, timeout=120, every=0.5)
        assert view is not None
        assert view["status"] == "completed", live_stack.logs()
        assert all(t["status"] == 2 and len(t["artifacts"]) == 5 for t in view["tasks"])

        await check_pulp(pulp_http, platform["name"], build["id"], view)


async def check_pulp(
    pulp: httpx.AsyncClient, platform: str, build_id: int, view: dict[str, Any]
) -> None:
    async def repo(name: str, kind: str = "rpm/rpm") -> dict[str, Any]:
        found = (
            await pulp.get(f"/pulp/api/v3/repositories/{kind}/", params={"name": name})
        ).json()["results"]
        assert found, f"no Pulp repository {name}"
        return dict(found[0])

    async def names(name: str) -> set[str]:
        _, units = await repo_content(pulp, (await repo(name))["pulp_href"], "rpm/packages")
        return {f"{u['name']}-{u['version']}-{u['release']}.{u['arch']}" for u in units}

    for arch in ARCHES:
        assert await names(f"{platform}-{arch}-{build_id}-br") == {
            f"albs-hello-1.0-1.{arch}",
            "albs-hello-data-1.0-1.noarch",
            f"albs-world-1.0-1.{arch}",
            "albs-world-data-1.0-1.noarch",
        }
        assert await names(f"{platform}-{arch}-{build_id}-debug-br") == {
            f"albs-hello-debuginfo-1.0-1.{arch}",
            f"albs-world-debuginfo-1.0-1.{arch}",
        }
    assert await names(f"{platform}-src-{build_id}-br") == {
        "albs-hello-1.0-1.src",
        "albs-world-1.0-1.src",
    }
    distribution = (
        await pulp.get(
            "/pulp/api/v3/distributions/rpm/rpm/",
            params={"name": f"{platform}-x86_64-{build_id}-br-distro"},
        )
    ).json()["results"][0]
    served = await served_packages(distribution["base_url"])
    assert "albs-hello-1.0-1.x86_64.rpm" in served
    for task in view["tasks"]:
        log_repo = f"{platform}-{task['arch']}-{build_id}-artifacts-{task['id']}"
        _, files = await repo_content(
            pulp, (await repo(log_repo, "file/file"))["pulp_href"], "file/files"
        )
        assert [f["relative_path"] for f in files] == [f"albs.{task['id']}.log"]
