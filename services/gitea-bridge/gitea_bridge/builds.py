"""Builds on new tags: a `gitea.tag` event that matches a rule becomes `POST /api/v1/builds/`.

It consumes the bridge's own events from RabbitMQ, so a build API outage delays builds
without holding up the MQTT consumer: an unavailable API gets the event again (up to the
queue's delivery limit), a refusal goes straight to the dead-letter queue, both logged.
A build created for an event is remembered in Redis under the event's id, so a
redelivered event does not build twice.
"""

import asyncio
import fnmatch
import logging

import httpx
from faststream import AckPolicy
from faststream.rabbit import Channel, RabbitMessage, RabbitRouter
from redis.asyncio import Redis

from gitea_bridge.settings import BuildRule, GiteaBridgeSettings
from shared.contracts.builds import BuildCreate, BuildCreateRef
from shared.contracts.gitea import TagPushed
from shared.contracts.topology import Topology

log = logging.getLogger(__name__)

CONSUMER = "gitea-bridge"
# Statuses that say the request was not carried out and may be sent again.
RETRIED_STATUSES = {429, 502, 503, 504}
REMEMBER_SECONDS = 7 * 24 * 3600


class BuildNotCreated(Exception):
    """The builds API could not be reached or was unavailable; worth another delivery."""


class BuildRefused(Exception):
    """The builds API refused the request (bad token, unknown platform, ...)."""


def matching_rule(rules: list[BuildRule], full_name: str, tag: str) -> BuildRule | None:
    for rule in rules:
        if any(fnmatch.fnmatchcase(full_name, p) for p in rule.repositories) and any(
            fnmatch.fnmatchcase(tag, p) for p in rule.tags
        ):
            return rule
    return None


def build_request(rule: BuildRule, event: TagPushed) -> BuildCreate:
    return BuildCreate(
        platforms=rule.platforms,
        tasks=[BuildCreateRef(url=event.clone_url, git_ref=event.tag)],
        linked_builds=[],
        mock_options={},
    )


class BuildTrigger:
    def __init__(
        self, settings: GiteaBridgeSettings, client: httpx.AsyncClient, redis: Redis
    ) -> None:
        assert settings.albs_jwt_token is not None
        self._settings = settings
        self._client = client
        self._redis = redis
        self._headers = {"Authorization": f"Bearer {settings.albs_jwt_token.get_secret_value()}"}

    async def on_tag(self, event: TagPushed, message_id: str) -> int | None:
        """The id of the build created for this event, or None when no build is due."""
        if event.deleted:
            return None
        rule = matching_rule(self._settings.build_rules, event.full_name, event.tag)
        if rule is None:
            log.info("builds: no rule for %s tag %s", event.full_name, event.tag)
            return None
        done_key = f"{self._settings.redis_prefix}:gitea-bridge:built:{message_id}"
        if (already := await self._redis.get(done_key)) is not None:
            log.info("builds: tag %s of %s already built (%s)", event.tag, event.full_name, already)
            return int(already)
        build_id = await self._create(build_request(rule, event))
        await self._redis.set(done_key, build_id, ex=REMEMBER_SECONDS)
        log.info("builds: build %s created for %s tag %s", build_id, event.full_name, event.tag)
        return build_id

    async def _create(self, body: BuildCreate) -> int:
        delay = self._settings.build_retry_backoff_seconds
        payload = body.model_dump(mode="json")
        attempts = self._settings.build_request_attempts
        for attempt in range(1, attempts + 1):
            try:
                response = await self._client.post(
                    self._settings.albs_builds_url, json=payload, headers=self._headers
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    return int(response.json()["id"])
                problem = f"HTTP {response.status_code}: {response.text[:500]}"
                if response.status_code not in RETRIED_STATUSES:
                    raise BuildRefused(f"the builds API refused the build: {problem}")
            if attempt < attempts:
                log.warning("builds: attempt %d failed (%s), retrying", attempt, problem)
                await asyncio.sleep(delay)
                delay *= 2
        raise BuildNotCreated(f"the builds API did not answer after {attempts} attempts: {problem}")


def build_trigger_router(topology: Topology, trigger: BuildTrigger) -> RabbitRouter:
    router = RabbitRouter()

    # One event at a time (the bridge is a single process: its MQTT client id is fixed), so
    # two copies of one event are never in flight together and the Redis check suffices.
    # Like every event subscriber, a failure is delivered again up to the delivery limit.
    @router.subscriber(
        topology.event_queue(CONSUMER, TagPushed),
        topology.events,
        channel=Channel(prefetch_count=1),
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def on_tag_pushed(event: TagPushed, message: RabbitMessage) -> None:
        try:
            await trigger.on_tag(event, message.message_id)
        except BuildRefused as exc:
            # Sending it again would be refused again: straight to the dead-letter queue.
            log.error("builds: %s tag %s: %s", event.full_name, event.tag, exc)
            await message.reject()

    return router
