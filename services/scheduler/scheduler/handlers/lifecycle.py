"""Events from the artifacts service that move builds along."""

from faststream.rabbit import RabbitMessage, RabbitRouter

from scheduler import release
from shared.contracts.build_node import BuildTaskArtifactsStored
from shared.contracts.builds import BuildReposFailed, BuildReposReady
from shared.contracts.topology import Topology
from shared.db.session import SessionFactory
from shared.messaging.inbox import handle_once
from shared.messaging.subscribers import event_subscriber

CONSUMER = "scheduler"


def lifecycle_handlers(topology: Topology, sessions: SessionFactory) -> RabbitRouter:
    router = RabbitRouter()

    @event_subscriber(router, topology, CONSUMER, BuildReposReady)
    async def on_build_repos_ready(event: BuildReposReady, message: RabbitMessage) -> None:
        await handle_once(sessions, CONSUMER, message.message_id, release.mark_repos_ready, event)

    @event_subscriber(router, topology, CONSUMER, BuildReposFailed)
    async def on_build_repos_failed(event: BuildReposFailed, message: RabbitMessage) -> None:
        await handle_once(sessions, CONSUMER, message.message_id, release.fail_build, event)

    @event_subscriber(router, topology, CONSUMER, BuildTaskArtifactsStored)
    async def on_artifacts_stored(event: BuildTaskArtifactsStored, message: RabbitMessage) -> None:
        await handle_once(sessions, CONSUMER, message.message_id, release.release_task, event)

    return router
