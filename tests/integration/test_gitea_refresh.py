"""The full refresh against a fake Gitea, and concurrent writers on one project in real Redis."""

import asyncio
import random

import httpx
from faststream.rabbit import RabbitBroker

from gitea_bridge.gitea_api import GiteaApi
from gitea_bridge.pushes import EventPublisher, PushProcessor
from gitea_bridge.refresher import Refresher
from shared.contracts.gitea import GiteaPushEvent
from shared.messaging.runtime import declare_topology
from shared.projects_cache import ProjectCache, ProjectMeta, RefKind
from tests.support.fake_gitea import FakeGitea
from tests.support.gitea_bridge import BridgeEnv
from tests.support.mqtt_clients import ZERO_SHA, tag_push
from tests.support.servers import Servers
from tests.support.waiting import eventually

PAGE_SIZE = 3  # small pages, so every listing below spans several of them
IN_FLIGHT = 30


def refresher(gitea: FakeGitea, cache: ProjectCache, orgs: list[str]) -> Refresher:
    client = httpx.AsyncClient(base_url=gitea.api_url, timeout=5)
    api = GiteaApi(client, page_size=PAGE_SIZE, attempts=2, backoff_seconds=0.01)
    return Refresher(api, cache, orgs, concurrency=2)


def ref_requests(gitea: FakeGitea, full_name: str) -> list[str]:
    return [r for r in gitea.requests if f"/repos/{full_name}/" in r]


async def test_full_refresh_with_pages_a_failing_and_a_removed_repository(
    gitea: FakeGitea, bridge_env: BridgeEnv
) -> None:
    cache = bridge_env.cache
    for n in range(7):
        gitea.add_repo("rpms", f"pkg{n}", branches=["c8", "c9"])
    gitea.add_repo("rpms", "bash", tags=[f"imports/c8/bash-4.4.19-{n}.el8" for n in range(8)])
    gitea.add_repo("rpms", "broken", tags=["x"])
    gitea.add_repo("modules", "perl", tags=["m1"], branches=["a8"])
    gitea.fail("/repos/rpms/broken/", status=500)
    gitea.fail("/repos/rpms/pkg3/tags", status=502, times=1)  # one retry heals it
    gitea.delay_seconds = 0.01
    refresh = refresher(gitea, cache, ["rpms", "modules"])

    first = await refresh.run_once()
    assert first.listed == 10
    assert sorted(first.refreshed) == sorted(
        [f"rpms/pkg{n}" for n in range(7)] + ["rpms/bash", "modules/perl"]
    )
    assert first.failed == ["rpms/broken"]
    assert await cache.get("rpms/broken") is None
    bash = await cache.get("rpms/bash")
    assert bash is not None
    assert bash.tags == sorted(f"imports/c8/bash-4.4.19-{n}.el8" for n in range(8))
    assert bash.branches == ["main"]
    assert bash.clone_url == gitea.clone_url("rpms/bash")
    assert [r.split("&")[-1] for r in ref_requests(gitea, "rpms/bash") if "/tags" in r] == [
        "page=1",
        "page=2",
        "page=3",
    ]
    assert gitea.max_in_flight <= 2

    gitea.requests.clear()
    gitea.push_tag("rpms/pkg0", "new-tag")
    gitea.remove_repo("rpms/pkg6")
    second = await refresh.run_once()
    assert second.refreshed == ["rpms/pkg0"]
    assert second.failed == ["rpms/broken"]
    assert second.removed == ["rpms/pkg6"]
    assert second.unchanged == 7  # all but pkg0 (changed), broken (failing), pkg6 (gone)
    assert ref_requests(gitea, "rpms/bash") == []  # unchanged: not fetched again
    pkg0 = await cache.get("rpms/pkg0")
    assert pkg0 is not None
    assert pkg0.tags == ["new-tag"]
    assert await cache.get("rpms/pkg6") is None
    assert "rpms/pkg6" not in await cache.full_names()


async def test_without_a_total_count_a_short_page_ends_the_listing(
    gitea: FakeGitea, bridge_env: BridgeEnv
) -> None:
    gitea.total_header = False
    for n in range(6):  # two full pages, then an empty one
        gitea.add_repo("rpms", f"pkg{n}", tags=[f"t{i}" for i in range(4)])
    report = await refresher(gitea, bridge_env.cache, ["rpms"]).run_once()
    assert len(report.refreshed) == 6
    pkg0 = await bridge_env.cache.get("rpms/pkg0")
    assert pkg0 is not None
    assert pkg0.tags == ["t0", "t1", "t2", "t3"]  # a full page, then a short one
    listing = [r for r in gitea.requests if "/orgs/rpms/repos" in r]
    assert [r.split("&")[-1] for r in listing] == ["page=1", "page=2", "page=3"]


async def test_an_organization_that_cannot_be_listed_keeps_its_projects(
    gitea: FakeGitea, bridge_env: BridgeEnv
) -> None:
    gitea.add_repo("modules", "perl", tags=["m1"])
    refresh = refresher(gitea, bridge_env.cache, ["modules"])
    await refresh.run_once()
    gitea.fail("/orgs/modules/repos", status=503)
    report = await refresh.run_once()
    assert report.failed_organizations == ["modules"]
    assert report.removed == []
    assert await bridge_env.cache.get("modules/perl") is not None


async def test_a_webhook_during_a_refresh_is_not_undone(
    gitea: FakeGitea, bridge_env: BridgeEnv
) -> None:
    """The refresh fetched the tags before the webhook's tag existed; the tag stays."""
    cache = bridge_env.cache
    gitea.add_repo("rpms", "bash", tags=["old"])
    project = ProjectMeta("rpms/bash", "bash", gitea.clone_url("rpms/bash"))
    since = await cache.revision("rpms/bash")
    answered = ["old"]  # what Gitea said before the push
    await cache.apply_ref_change(project, RefKind.TAG, "pushed", deleted=False)
    await cache.apply_ref_change(project, RefKind.BRANCH, "gone", deleted=True)
    await cache.sync_project(
        project, updated_at="t", tags=answered, branches=["main", "gone"], since=since
    )
    synced = await cache.get("rpms/bash")
    assert synced is not None
    assert (synced.tags, synced.branches) == (["old", "pushed"], ["main"])
    # An answer older than one already stored is dropped whole.
    newer = await cache.revision("rpms/bash")
    assert await cache.sync_project(
        project, updated_at="t", tags=["old", "pushed"], branches=["main"], since=newer
    )
    assert not await cache.sync_project(project, updated_at="t", tags=[], branches=[], since=since)
    assert await cache.get("rpms/bash") == synced


async def test_the_bridge_refreshes_periodically(gitea: FakeGitea, bridge_env: BridgeEnv) -> None:
    gitea.add_repo("rpms", "bash", tags=["t1"])
    await bridge_env.start(
        gitea_refresh_enabled=True,
        gitea_api_url=gitea.api_url,
        gitea_organizations=["rpms"],
        gitea_refresh_interval_seconds=0.2,
    )

    async def cached() -> bool:
        return await bridge_env.tags("rpms/bash") == ["t1"]

    await eventually(cached)
    gitea.push_tag("rpms/bash", "t2")

    async def refreshed() -> bool:
        return await bridge_env.tags("rpms/bash") == ["t1", "t2"]

    await eventually(refreshed)


async def test_a_thousand_concurrent_updates_of_one_project_lose_nothing(
    gitea: FakeGitea, bridge_env: BridgeEnv, servers: Servers
) -> None:
    """500 webhooks through the consumer's processor and 500 refreshes of one project at once.

    Each webhook changes a tag in (fake) Gitea, then is delivered and processed; a few dozen
    are between those two steps at any moment. Each refresh
    follows the refresher's protocol: read the revision, take Gitea's answer, and store it
    only after up to 50 more webhooks were processed (a slow wire, and so a stale answer,
    however fast or slow this machine is). 480 take the answer straight from the fake's
    state (what its HTTP endpoint would serve at that instant); 20 are complete refresh runs
    over HTTP. In the end the cache must hold exactly the tags Gitea holds.
    """
    cache = bridge_env.cache
    base = [f"base-{n:02}" for n in range(60)]
    gitea.add_repo("rpms", "kernel", tags=base, branches=["c8"])
    project = ProjectMeta("rpms/kernel", "kernel", gitea.clone_url("rpms/kernel"))
    rng = random.Random(5)
    deletable = rng.sample(base, len(base))
    broker = RabbitBroker(servers.amqp_url)
    processor = PushProcessor(cache, EventPublisher(broker, bridge_env.topology))
    await broker.start()
    await declare_topology(broker, bridge_env.topology)
    client = httpx.AsyncClient(base_url=gitea.api_url, timeout=60)
    full_runs = Refresher(GiteaApi(client, page_size=50), cache, ["rpms"], concurrency=2)
    processed = asyncio.Condition()
    webhooks_done = 0

    async def webhook(n: int) -> None:
        nonlocal webhooks_done
        # At most IN_FLIGHT webhooks between their Gitea change and their processing, so
        # Gitea keeps changing for as long as the test runs, as it does in life.
        async with processed:
            await processed.wait_for(lambda: webhooks_done >= n - IN_FLIGHT)
        if n % 10 == 9:
            tag = deletable.pop()
            gitea.delete_tag("rpms/kernel", tag)
            payload = tag_push("rpms/kernel", tag)
            payload.update(before="5e1f0a3b7c9d2e4f6a8b0c1d3e5f7a9b2c4d6e8f", after=ZERO_SHA)
        else:
            tag = f"v{n:03}"
            gitea.push_tag("rpms/kernel", tag)
            payload = tag_push("rpms/kernel", tag)
        await processor(GiteaPushEvent.model_validate(payload))
        async with processed:
            webhooks_done += 1
            processed.notify_all()

    async def refresh() -> None:
        await asyncio.sleep(rng.random() / 100)
        since = await cache.revision(project.full_name)
        answer = gitea.tags_of(project.full_name)
        later = min(webhooks_done + rng.randint(1, 50), 500)
        async with processed:
            await processed.wait_for(lambda: webhooks_done >= later)
        await cache.sync_project(project, updated_at="-", tags=answer, branches=["c8"], since=since)

    async def full_run() -> None:
        await asyncio.sleep(rng.random() / 100)
        report = await full_runs.run_once()
        assert report.failed == []

    jobs = [webhook(n) for n in range(500)]
    jobs += [refresh() for _ in range(480)] + [full_run() for _ in range(20)]
    rng.shuffle(jobs)
    try:
        await asyncio.wait_for(asyncio.gather(*jobs), 240)
    finally:
        await broker.stop()
        await client.aclose()

    final = await cache.get("rpms/kernel")
    assert final is not None
    assert final.tags == sorted(gitea.tags_of("rpms/kernel"))
    assert len(final.tags) == 60 - 50 + 450
    assert final.branches == ["c8"]
