"""One push event: update the project cache, then publish `gitea.push` or `gitea.tag`."""

import logging
import uuid
from dataclasses import dataclass

from aiormq import spec
from faststream.rabbit import RabbitBroker
from faststream.rabbit.publisher import RabbitPublisher

from gitea_bridge.mqtt import MqttDelivery
from shared.contracts.gitea import BranchPushed, GiteaPushEvent, GitRefChanged, TagPushed
from shared.contracts.topology import Topology, is_subscribed
from shared.messaging.poison import mqtt_dead_letter_headers
from shared.projects_cache import ProjectCache, ProjectMeta, RefKind

log = logging.getLogger(__name__)

BRANCH_PREFIX = "refs/heads/"
TAG_PREFIX = "refs/tags/"
# Event ids are derived from the push itself, so a redelivered push gets the same id and
# consumers drop the duplicate through their inbox.
EVENT_ID_NAMESPACE = uuid.UUID("0b5c8a3e-4f21-4d61-9a3c-6f1e2d7b9c40")


class PublishNotConfirmed(Exception):
    pass


@dataclass(frozen=True)
class RefChange:
    kind: RefKind
    name: str
    deleted: bool


def ref_change(push: GiteaPushEvent) -> RefChange | None:
    """What the push did, or None for refs that are neither branches nor tags."""
    deleted = bool(push.after) and set(push.after) == {"0"}
    if push.ref.startswith(BRANCH_PREFIX):
        return RefChange(RefKind.BRANCH, push.ref.removeprefix(BRANCH_PREFIX), deleted)
    if push.ref.startswith(TAG_PREFIX):
        return RefChange(RefKind.TAG, push.ref.removeprefix(TAG_PREFIX), deleted)
    return None


def event_for(push: GiteaPushEvent, change: RefChange) -> GitRefChanged:
    repo = push.repository
    common = {
        "full_name": repo.full_name,
        "name": repo.name,
        "clone_url": repo.clone_url,
        "ref": push.ref,
        "before": push.before,
        "after": push.after,
        "deleted": change.deleted,
        "pusher": push.pusher.login if push.pusher else "",
    }
    if change.kind is RefKind.TAG:
        return TagPushed(tag=change.name, **common)
    return BranchPushed(branch=change.name, commits=[c.id for c in push.commits], **common)


def event_id(push: GiteaPushEvent) -> str:
    identity = "\n".join((push.repository.full_name, push.ref, push.before, push.after))
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, identity))


class EventPublisher:
    """Declared publishers of the bridge's events: persistent, confirmed by the broker."""

    def __init__(self, broker: RabbitBroker, topology: Topology, timeout: float = 30.0) -> None:
        self._timeout = timeout
        self._broker = broker
        self._topology = topology
        self._publishers: dict[type[GitRefChanged], RabbitPublisher] = {
            kind: broker.publisher(
                exchange=topology.events,
                routing_key=kind.routing_key,
                persist=True,
                # Unroutable is a failure for an event some service consumes; `gitea.push`
                # has no consumer today and is only announced.
                mandatory=is_subscribed(kind.routing_key),
                title=f"{topology.prefix}.events:{kind.routing_key}",
                schema=kind,
            )
            for kind in (BranchPushed, TagPushed)
        }

    async def dead_letter(
        self, delivery: MqttDelivery, error: BaseException, failures: int
    ) -> None:
        """Keep an MQTT message that cannot be processed in the dead-letter queue."""
        confirmation = await self._broker.publish(
            delivery.payload,
            exchange=self._topology.dead_letters,
            routing_key=delivery.topic,
            headers=mqtt_dead_letter_headers(delivery.topic, error, failures),
            message_id=str(uuid.uuid4()),
            persist=True,
            content_type="application/json",
            timeout=self._timeout,
        )
        if not isinstance(confirmation, spec.Basic.Ack):
            raise PublishNotConfirmed(
                f"RabbitMQ did not confirm the dead letter of {delivery.topic}"
            )
        log.error(
            "mqtt: a message of %s was dead-lettered after %d failures: %r",
            delivery.topic,
            failures,
            error,
        )

    async def publish(self, event: GitRefChanged, message_id: str) -> None:
        confirmation = await self._publishers[type(event)].publish(
            event, message_id=message_id, timeout=self._timeout
        )
        if not isinstance(confirmation, spec.Basic.Ack):
            raise PublishNotConfirmed(f"RabbitMQ did not confirm {event.routing_key} {message_id}")


class PushProcessor:
    def __init__(self, cache: ProjectCache, publisher: EventPublisher) -> None:
        self._cache = cache
        self._publisher = publisher

    async def __call__(self, push: GiteaPushEvent) -> None:
        change = ref_change(push)
        repo = push.repository
        if change is None:
            log.info(
                "gitea: ignored %s of %s (neither a branch nor a tag)", push.ref, repo.full_name
            )
            return
        project = ProjectMeta(repo.full_name, repo.name, repo.clone_url)
        await self._cache.apply_ref_change(
            project, change.kind, change.name, deleted=change.deleted
        )
        event = event_for(push, change)
        await self._publisher.publish(event, event_id(push))
        action = "deleted" if change.deleted else "pushed"
        log.info("gitea: %s %s %s of %s", change.kind.value, change.name, action, repo.full_name)
