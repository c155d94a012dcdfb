"""Event subscribers: a build's repositories, a task's artifacts, a deleted build."""

from faststream.rabbit import RabbitMessage, RabbitRouter

from artifacts.alts_logs import file_test_logs, prepare_test_log_repository
from artifacts.context import Context
from artifacts.filing import store_task_artifacts
from artifacts.repositories import prepare_build_repositories, remove_build_repositories
from artifacts.signing import replace_signed_packages
from shared.contracts.build_node import BuildTaskFinished
from shared.contracts.builds import BuildCreated, BuildDeleted
from shared.contracts.signing import SignTaskSigned
from shared.contracts.test_tasks import TestTaskFinished, TestTasksCreated
from shared.contracts.topology import Topology
from shared.messaging.subscribers import event_subscriber

CONSUMER = "artifacts"


def build_handlers(topology: Topology, context: Context) -> RabbitRouter:
    router = RabbitRouter()

    @event_subscriber(router, topology, CONSUMER, BuildCreated)
    async def on_build_created(event: BuildCreated, message: RabbitMessage) -> None:
        await prepare_build_repositories(context, message.message_id, event)

    @event_subscriber(router, topology, CONSUMER, BuildTaskFinished)
    async def on_build_task_finished(event: BuildTaskFinished, message: RabbitMessage) -> None:
        await store_task_artifacts(context, message.message_id, event)

    @event_subscriber(router, topology, CONSUMER, BuildDeleted)
    async def on_build_deleted(event: BuildDeleted, message: RabbitMessage) -> None:
        await remove_build_repositories(context, message.message_id, event)

    @event_subscriber(router, topology, CONSUMER, SignTaskSigned)
    async def on_sign_task_signed(event: SignTaskSigned, message: RabbitMessage) -> None:
        await replace_signed_packages(context, message.message_id, event)

    @event_subscriber(router, topology, CONSUMER, TestTasksCreated)
    async def on_test_tasks_created(event: TestTasksCreated, message: RabbitMessage) -> None:
        await prepare_test_log_repository(context, message.message_id, event)

    @event_subscriber(router, topology, CONSUMER, TestTaskFinished)
    async def on_test_task_finished(event: TestTaskFinished, message: RabbitMessage) -> None:
        await file_test_logs(context, message.message_id, event)

    return router
