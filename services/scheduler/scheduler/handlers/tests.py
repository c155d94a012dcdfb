"""RPC subscribers for ALTS results and test restarts."""

from faststream.rabbit import RabbitRouter

from scheduler import testing
from shared.contracts.messages import RpcReply
from shared.contracts.test_tasks import (
    REPORT_TEST_RESULT,
    RESTART_TESTS,
    ReportTestResult,
    RestartTests,
)
from shared.contracts.topology import Topology
from shared.db.session import SessionFactory, in_transaction
from shared.messaging.rpc_server import reply


def test_handlers(topology: Topology, sessions: SessionFactory) -> RabbitRouter:
    router = RabbitRouter()

    @router.subscriber(topology.rpc_queue(REPORT_TEST_RESULT))
    async def on_test_result(command: ReportTestResult) -> RpcReply:
        return await reply(
            in_transaction(sessions, testing.record_result, command.test_task_id, command.result)
        )

    @router.subscriber(topology.rpc_queue(RESTART_TESTS))
    async def on_restart_tests(command: RestartTests) -> RpcReply:
        if command.build_task_id is not None:
            return await reply(
                in_transaction(
                    sessions, testing.restart_task_tests, command.actor, command.build_task_id
                )
            )
        return await reply(
            in_transaction(
                sessions, testing.restart_build_tests, command.actor, command.build_id or 0
            )
        )

    return router
