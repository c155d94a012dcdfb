"""Builds on new tags: a `gitea.tag` event that matches a rule becomes a create-build RPC.

It consumes the bridge's own events from RabbitMQ, so a scheduler outage delays builds
without holding up the MQTT consumer. The RPC goes straight to the scheduler as the service
account `build_account`, with an idempotency key derived from the event id: a redelivered
event, or a retry after a timeout that the scheduler did carry out, returns the first build.
An unavailable scheduler is retried (then the event is delivered again, then dead-lettered);
a refusal (unknown platform, missing service account) goes to the dead-letter queue at once.
"""

import fnmatch
import logging

from faststream import AckPolicy
from faststream.rabbit import Channel, RabbitBroker, RabbitMessage, RabbitRouter
from pydantic import ValidationError
from redis.asyncio import Redis

from gitea_bridge.settings import BuildRule, GiteaBridgeSettings
from shared.contracts.builds import CREATE_BUILD, BuildCreate, BuildCreateRef, BuildOut, CreateBuild
from shared.contracts.gitea import TagPushed
from shared.contracts.messages import Actor, RpcReply
from shared.contracts.topology import Topology
from shared.messaging.poison import DeadLetter
from shared.retry import retrying

log = logging.getLogger(__name__)

CONSUMER = "gitea-bridge"
REMEMBER_SECONDS = 7 * 24 * 3600
# The scheduler resolves a service actor with this user id by its name.
SERVICE_USER_ID = 0


class BuildNotCreated(Exception):
    """The scheduler did not answer, or answered that it is unavailable; worth a retry."""


class BuildRefused(DeadLetter):
    """The scheduler refused the build (unknown platform, no such service account, ...)."""


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


def idempotency_key(message_id: str) -> str:
    """The tag event's id is derived from the push, so every copy of it gets the same key."""
    return f"gitea-tag:{message_id}"


def service_actor(account: str) -> Actor:
    return Actor(user_id=SERVICE_USER_ID, name=account, kind="service")


class BuildTrigger:
    def __init__(
        self, settings: GiteaBridgeSettings, broker: RabbitBroker, topology: Topology, redis: Redis
    ) -> None:
        self._settings = settings
        self._broker = broker
        self._queue = topology.rpc_queue(CREATE_BUILD).name
        self._redis = redis

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
        command = CreateBuild(
            actor=service_actor(self._settings.build_account),
            build=build_request(rule, event),
            idempotency_key=idempotency_key(message_id),
        )
        build_id = await retrying(
            lambda: self._create(command),
            what=f"builds: {event.full_name} tag {event.tag}",
            retry_on=lambda error: isinstance(error, BuildNotCreated | TimeoutError),
            attempts=self._settings.build_request_attempts,
            first_wait=self._settings.build_retry_backoff_seconds,
        )
        await self._redis.set(done_key, build_id, ex=REMEMBER_SECONDS)
        log.info("builds: build %s created for %s tag %s", build_id, event.full_name, event.tag)
        return build_id

    async def _create(self, command: CreateBuild) -> int:
        answer = await self._broker.request(
            command,
            queue=self._queue,
            timeout=self._settings.build_request_timeout_seconds,
            # Like the gateway's: a request nobody picked up in time must not run later.
            expiration=self._settings.build_request_timeout_seconds,
        )
        try:
            reply = RpcReply.model_validate(await answer.decode())
            if reply.ok:
                return BuildOut.model_validate(reply.result).id
        except ValidationError as exc:
            raise BuildNotCreated(f"the scheduler sent a malformed reply: {exc}") from exc
        error = reply.error
        problem = f"{error.status}: {error.detail}" if error else "no detail"
        if error is None or error.status >= 500 or error.status == 429:
            raise BuildNotCreated(f"the scheduler could not create the build ({problem})")
        raise BuildRefused(f"the scheduler refused the build ({problem})")


def build_trigger_router(topology: Topology, trigger: BuildTrigger) -> RabbitRouter:
    router = RabbitRouter()

    # One event at a time (the bridge is a single process: its MQTT client id is fixed), so
    # two copies of one event are never in flight together. A failure is delivered again
    # (the poison middleware counts) and a refusal is dead-lettered at once with its error.
    @router.subscriber(
        topology.event_queue(CONSUMER, TagPushed),
        topology.events,
        channel=Channel(prefetch_count=1),
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def on_tag_pushed(event: TagPushed, message: RabbitMessage) -> None:
        await trigger.on_tag(event, message.message_id)

    return router
