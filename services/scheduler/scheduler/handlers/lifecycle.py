"""Events from the artifacts service that move builds along."""

from faststream.rabbit import RabbitMessage, RabbitRouter

from scheduler import release
from shared.contracts.build_node import BuildTaskArtifactsStored
from shared.contracts.builds import BuildReposFailed, BuildReposReady
from shared.contracts.topology import Topology
from shared.db.session import SessionFactory, unit_of_work
from shared.messaging.inbox import first_delivery

CONSUMER = "scheduler"


def lifecycle_handlers(topology: Topology, sessions: SessionFactory) -> RabbitRouter:
    router = RabbitRouter()

    @router.subscriber(topology.event_queue(CONSUMER, BuildReposReady), topology.events)
    async def on_build_repos_ready(event: BuildReposReady, message: RabbitMessage) -> None:
        async with unit_of_work(sessions) as session:
            if await first_delivery(session, CONSUMER, message.message_id):
                await release.mark_repos_ready(session, event)

    @router.subscriber(topology.event_queue(CONSUMER, BuildReposFailed), topology.events)
    async def on_build_repos_failed(event: BuildReposFailed, message: RabbitMessage) -> None:
        async with unit_of_work(sessions) as session:
            if await first_delivery(session, CONSUMER, message.message_id):
                await release.fail_build(session, event)

    @router.subscriber(topology.event_queue(CONSUMER, BuildTaskArtifactsStored), topology.events)
    async def on_artifacts_stored(event: BuildTaskArtifactsStored, message: RabbitMessage) -> None:
        async with unit_of_work(sessions) as session:
            if await first_delivery(session, CONSUMER, message.message_id):
                await release.release_task(session, event)

    return router
