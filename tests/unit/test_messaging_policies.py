"""The decisions behind trustworthy messaging, as pure functions and small loops (no servers)."""

import asyncio

import pytest
from pydantic import BaseModel, ValidationError

from gitea_bridge.builds import idempotency_key, service_actor
from gitea_bridge.consumer import Consumer, is_transient
from gitea_bridge.mqtt import MqttDelivery
from gitea_bridge.pushes import PublishNotConfirmed
from scheduler.idempotency import SERVICE_USER_ID, body_hash
from shared.contracts.builds import BuildCreate
from shared.contracts.gitea import GiteaPushEvent
from shared.contracts.topology import MAX_DELIVERIES, SUBSCRIPTIONS, Topology, is_subscribed
from shared.messaging.poison import (
    DeadLetter,
    dead_letter_headers,
    failed_deliveries,
    should_dead_letter,
)
from shared.periodic import PeriodicJob
from shared.retry import retrying
from tests.unit.test_gitea_bridge import push


def test_every_subscription_has_a_dead_lettered_quorum_queue() -> None:
    queues = Topology("p").event_queues()
    assert len(queues) == len(SUBSCRIPTIONS) == len({q.name for q in queues})
    for queue in queues:
        assert queue.durable
        assert queue.arguments["x-queue-type"] == "quorum"
        assert queue.arguments["x-delivery-limit"] == MAX_DELIVERIES
        assert queue.arguments["x-dead-letter-exchange"] == "p.dead"


def test_an_unlisted_subscription_fails_loudly() -> None:
    with pytest.raises(ValueError, match="SUBSCRIPTIONS"):
        Topology("p").event_queue("nobody", next(iter(SUBSCRIPTIONS))[1])


def test_only_events_somebody_consumes_must_be_routed() -> None:
    assert is_subscribed("build.created")
    assert not is_subscribed("build_task.assigned")
    assert not is_subscribed("gitea.push")


def test_poison_counting() -> None:
    assert failed_deliveries(None) == 0
    assert failed_deliveries({"x-delivery-count": 3}) == 3
    assert not should_dead_letter(RuntimeError(), earlier_failures=3, max_failures=5)
    assert should_dead_letter(RuntimeError(), earlier_failures=4, max_failures=5)
    assert should_dead_letter(DeadLetter("refused"), earlier_failures=0, max_failures=5)
    with pytest.raises(ValidationError) as invalid:
        BuildCreate.model_validate({})
    assert should_dead_letter(invalid.value, earlier_failures=0, max_failures=5)
    headers = dead_letter_headers(
        {"x-delivery-count": 4, "trace": "t"},
        queue="p.artifacts.build.created",
        routing_key="build.created",
        error=ValueError("x" * 5000),
        failures=5,
    )
    assert "x-delivery-count" not in headers
    assert headers["trace"] == "t"
    assert headers["x-albs-queue"] == "p.artifacts.build.created"
    assert len(headers["x-albs-error"]) == 2000


def test_body_hash_ignores_key_order_but_not_content() -> None:
    a = BuildCreate.model_validate(
        {"platforms": [{"name": "P", "arch_list": ["x86_64"]}], "tasks": [{"url": "u"}]}
    )
    b = BuildCreate.model_validate(
        {"tasks": [{"url": "u"}], "platforms": [{"arch_list": ["x86_64"], "name": "P"}]}
    )
    c = BuildCreate.model_validate(
        {"platforms": [{"name": "P", "arch_list": ["i686"]}], "tasks": [{"url": "u"}]}
    )
    assert body_hash(a) == body_hash(b) != body_hash(c)


def test_the_bridge_asks_as_its_service_account_with_a_key_per_event() -> None:
    actor = service_actor("gitea-bridge")
    assert (actor.user_id, actor.kind, actor.name) == (SERVICE_USER_ID, "service", "gitea-bridge")
    assert idempotency_key("abc") == idempotency_key("abc") != idempotency_key("abd")


async def test_retrying_retries_only_what_it_is_told_and_reraises_the_last_error() -> None:
    calls: list[int] = []

    async def flaky() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("down")
        return 7

    assert await retrying(flaky, what="t", retry_on=lambda e: True, first_wait=0.001) == 7
    calls.clear()

    async def refused() -> int:
        calls.append(1)
        raise PermissionError("no")

    with pytest.raises(PermissionError):
        await retrying(refused, what="t", retry_on=lambda e: isinstance(e, ConnectionError))
    assert len(calls) == 1

    async def always_down() -> int:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        await retrying(always_down, what="t", retry_on=lambda e: True, attempts=3, first_wait=0.001)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectionError):
        await retrying(
            always_down,
            what="t",
            retry_on=lambda e: True,
            deadline_seconds=0.2,
            first_wait=0.01,
            max_wait=0.05,
        )
    assert loop.time() - started < 1.0


async def test_a_periodic_job_survives_a_failed_run_wakes_early_and_stops_cleanly() -> None:
    runs: list[float] = []

    async def job() -> None:
        runs.append(asyncio.get_running_loop().time())
        if len(runs) == 1:
            raise RuntimeError("one bad pass")

    periodic = PeriodicJob("test", job, interval_seconds=0.05)
    periodic.start()
    await asyncio.sleep(0.2)
    assert len(runs) >= 3  # the failure did not end the loop
    periodic.wake.set()
    await asyncio.sleep(0)
    await periodic.stop()
    assert not periodic.running
    count = len(runs)
    await asyncio.sleep(0.1)
    assert len(runs) == count


async def test_stop_lets_a_run_in_progress_finish() -> None:
    finished: list[bool] = []

    async def slow() -> None:
        await asyncio.sleep(0.1)
        finished.append(True)

    periodic = PeriodicJob("slow", slow, interval_seconds=10)
    periodic.start()
    await asyncio.sleep(0.01)
    await periodic.stop()
    assert finished == [True]


class Outcome(BaseModel):
    handled: list[str] = []
    dead: list[tuple[str, str]] = []
    acked: list[int] = []


def delivery(mid: int, ref: str) -> MqttDelivery:
    event = push("tag_push").model_copy(update={"ref": ref})
    return MqttDelivery("t", event.model_dump_json().encode(), mid, 1)


async def test_mqtt_poison_is_dead_lettered_and_the_next_message_is_processed() -> None:
    outcome = Outcome()
    outages = {"refs/tags/outage": 2}

    async def handle(event: GiteaPushEvent) -> None:
        if event.ref == "refs/tags/poison":
            raise KeyError("a bug this payload always hits")
        if outages.get(event.ref, 0) > 0:
            outages[event.ref] -= 1
            raise PublishNotConfirmed("RabbitMQ is away")
        outcome.handled.append(event.ref)

    async def dead_letter(d: MqttDelivery, error: BaseException, failures: int) -> None:
        outcome.dead.append((str(d.mid), f"{type(error).__name__}:{failures}"))

    consumer = Consumer(
        handle,
        lambda d: outcome.acked.append(d.mid),
        dead_letter,
        max_failures=3,
        retry_max_seconds=0.01,
    )
    consumer.start()
    for mid, ref in ((1, "refs/tags/poison"), (2, "refs/tags/outage"), (3, "refs/tags/ok")):
        consumer.deliver(delivery(mid, ref))
    await consumer.stop(drain_seconds=10)
    assert outcome.dead == [("1", "KeyError:3")]
    assert outcome.handled == ["refs/tags/outage", "refs/tags/ok"]  # outages never dead-letter
    assert outcome.acked == [1, 2, 3]
    assert is_transient(PublishNotConfirmed())
    assert not is_transient(KeyError())
