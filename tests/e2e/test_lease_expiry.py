"""A node that stops pinging loses its task; its late report is refused and leaves nothing."""

from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.db.models import UserKind
from tests.support.builds import platform_body
from tests.support.live_stack import LiveStack
from tests.support.nodes import build_done, get_task, pinging
from tests.support.pulp_node import upload_artifact
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.pulp]


async def test_task_moves_to_another_node_and_the_late_report_is_409(
    live_stack: LiveStack, pulp_http: httpx.AsyncClient, run_id: str, tmp_path: Path
) -> None:
    admin = await live_stack.token("lease-admin", admin=True)
    user = await live_stack.token("lease-user")
    node = await live_stack.token("lease-node", kind=UserKind.NODE)
    slow, fast = {**node, "X-Node-Id": "slow"}, {**node, "X-Node-Id": "fast"}
    platform = f"Lease-{run_id}"
    async with httpx.AsyncClient(base_url=live_stack.gateway_url, timeout=60) as client:
        await client.post(
            "/api/v1/platforms/", json=platform_body(platform, ["x86_64"]), headers=admin
        )
        body = {
            "platforms": [{"name": platform, "arch_list": ["x86_64"]}],
            "tasks": [{"url": "https://g.example.org/x.git"}],
        }
        build = (await client.post("/api/v1/builds/", json=body, headers=user)).json()

        async def assigned_to(headers: dict[str, str]) -> dict[str, Any] | None:
            return await get_task(client, headers, ["x86_64"])

        first = await eventually(lambda: assigned_to(slow), timeout=120, every=0.2)
        assert first is not None
        # "slow" never pings: after the lease (3 s) the reaper gives the task to "fast".
        second = await eventually(lambda: assigned_to(fast), timeout=60, every=0.2)
        assert second is not None
        assert second["id"] == first["id"]

        async with pinging(client, fast, second["id"]):  # the new assignee keeps its lease
            late_log, log = tmp_path / "albs.slow.log", tmp_path / "albs.fast.log"
            late_log.write_text("the slow node finished too late\n")
            log.write_text("the fast node built it\n")
            late = await build_done(
                client,
                slow,
                first["id"],
                "done",
                [
                    {
                        "name": late_log.name,
                        "type": "build_log",
                        "href": await upload_artifact(pulp_http, late_log),
                    }
                ],
            )
            assert late.status_code == 409
            assert "another node" in late.json()["detail"]
            ok = await build_done(
                client,
                fast,
                second["id"],
                "done",
                [
                    {
                        "name": log.name,
                        "type": "build_log",
                        "href": await upload_artifact(pulp_http, log),
                    }
                ],
            )
            assert ok.json() == {"ok": True}
        again = await build_done(client, slow, first["id"], "done")
        assert again.status_code == 409  # not its task any more, whatever the outcome
        repeat = await build_done(client, fast, first["id"], "done")
        assert repeat.status_code == 200  # the holder's repeat of the same outcome: harmless

        async def completed() -> dict[str, Any] | None:
            view: dict[str, Any] = (
                await client.get(f"/api/v1/builds/{build['id']}/", headers=user)
            ).json()
            return view if view["status"] == "completed" else None

        view = await eventually(completed, timeout=120, every=0.5)
        assert view is not None
        assert [a["name"] for a in view["tasks"][0]["artifacts"]] == ["albs.fast.log"]
        repo = f"{platform}-x86_64-{build['id']}-artifacts-{first['id']}"
        found = (
            await pulp_http.get("/pulp/api/v3/repositories/file/file/", params={"name": repo})
        ).json()["results"]
        files = (
            await pulp_http.get(
                "/pulp/api/v3/content/file/files/",
                params={"repository_version": found[0]["latest_version_href"]},
            )
        ).json()
        assert [f["relative_path"] for f in files["results"]] == ["albs.fast.log"]
