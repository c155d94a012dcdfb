"""Exchange and queue names, defined once and declared by every service at start."""

from dataclasses import dataclass
from typing import Any

from faststream.rabbit import ExchangeType, QueueType, RabbitExchange, RabbitQueue

from shared.contracts.build_node import (
    BUILD_DONE,
    GET_TASK,
    BuildTaskArtifactsStored,
    BuildTaskFinished,
    NodePinged,
)
from shared.contracts.builds import (
    CREATE_BUILD,
    DELETE_BUILD,
    RESTART_FAILED,
    BuildCreated,
    BuildDeleted,
    BuildReposFailed,
    BuildReposReady,
)
from shared.contracts.distributions import (
    ADD_TO_DISTRIBUTION,
    CREATE_DISTRIBUTION,
    REMOVE_FROM_DISTRIBUTION,
)
from shared.contracts.gitea import TagPushed
from shared.contracts.messages import Event, RpcSpec
from shared.contracts.platforms import CREATE_PLATFORM, MODIFY_PLATFORM
from shared.contracts.signing import (
    CANCEL_SIGN_TASK,
    COMPLETE_SIGN_TASK,
    CREATE_SIGN_KEY,
    CREATE_SIGN_TASK,
    GET_SIGN_TASK,
    UPDATE_SIGN_KEY,
    SignTaskPackagesReplaced,
    SignTaskSigned,
)
from shared.contracts.test_tasks import (
    REPORT_TEST_RESULT,
    RESTART_TESTS,
    TestTaskFinished,
    TestTasksCreated,
)
from shared.contracts.users import LOGIN_GITHUB, REVOKE_TOKENS, SET_ADMIN

# A message that keeps failing goes to the dead-letter queue after this many deliveries.
MAX_DELIVERIES = 10

# Every (consumer, event) subscription of the system. Each service declares all of them at
# start, so an event is queued for its consumer even if that consumer never ran yet; a
# subscriber missing here fails at start (see shared/messaging/subscribers.py).
SUBSCRIPTIONS: tuple[tuple[str, type[Event]], ...] = (
    ("scheduler", BuildReposReady),
    ("scheduler", BuildReposFailed),
    ("scheduler", BuildTaskArtifactsStored),
    ("scheduler", NodePinged),
    ("artifacts", BuildCreated),
    ("artifacts", BuildTaskFinished),
    ("artifacts", BuildDeleted),
    ("artifacts", SignTaskSigned),
    ("scheduler", SignTaskPackagesReplaced),
    ("artifacts", TestTasksCreated),
    ("artifacts", TestTaskFinished),
    # A restarted task of a build in a distribution brings its new packages there.
    ("artifacts", BuildTaskArtifactsStored),
    ("gitea-bridge", TagPushed),
)

RPCS: tuple[RpcSpec[Any, Any], ...] = (
    CREATE_BUILD,
    RESTART_FAILED,
    DELETE_BUILD,
    CREATE_PLATFORM,
    MODIFY_PLATFORM,
    GET_TASK,
    BUILD_DONE,
    LOGIN_GITHUB,
    SET_ADMIN,
    REVOKE_TOKENS,
    CREATE_SIGN_KEY,
    UPDATE_SIGN_KEY,
    CREATE_SIGN_TASK,
    GET_SIGN_TASK,
    COMPLETE_SIGN_TASK,
    CANCEL_SIGN_TASK,
    REPORT_TEST_RESULT,
    RESTART_TESTS,
    CREATE_DISTRIBUTION,
    ADD_TO_DISTRIBUTION,
    REMOVE_FROM_DISTRIBUTION,
)

SUBSCRIBED_KEYS = frozenset(event.routing_key for _, event in SUBSCRIPTIONS)


def is_subscribed(routing_key: str) -> bool:
    """Whether some service consumes this event; an event nobody consumes is only announced."""
    return routing_key in SUBSCRIBED_KEYS


@dataclass(frozen=True)
class Topology:
    prefix: str

    @property
    def events(self) -> RabbitExchange:
        return RabbitExchange(f"{self.prefix}.events", type=ExchangeType.TOPIC, durable=True)

    @property
    def dead_letters(self) -> RabbitExchange:
        return RabbitExchange(f"{self.prefix}.dead", type=ExchangeType.FANOUT, durable=True)

    @property
    def dead_letter_queue(self) -> RabbitQueue:
        return RabbitQueue(f"{self.prefix}.dead-letters", durable=True)

    def rpc_queue(self, spec: RpcSpec[Any, Any]) -> RabbitQueue:
        return RabbitQueue(f"{self.prefix}.rpc.{spec.name}", durable=True)

    def event_queue(self, consumer: str, event: type[Event]) -> RabbitQueue:
        """The queue of one consumer for one event; replicas of the consumer share it."""
        if (consumer, event) not in SUBSCRIPTIONS:
            raise ValueError(
                f"{consumer} subscribes to {event.routing_key} but SUBSCRIPTIONS does not list it"
            )
        return RabbitQueue(
            f"{self.prefix}.{consumer}.{event.routing_key}",
            durable=True,
            routing_key=event.routing_key,
            queue_type=QueueType.QUORUM,
            arguments={
                "x-delivery-limit": MAX_DELIVERIES,
                "x-dead-letter-exchange": self.dead_letters.name,
            },
        )

    def event_queues(self) -> list[RabbitQueue]:
        return [self.event_queue(consumer, event) for consumer, event in SUBSCRIPTIONS]

    def rpc_queues(self) -> list[RabbitQueue]:
        return [self.rpc_queue(spec) for spec in RPCS]
