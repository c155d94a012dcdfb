"""Every Prometheus series of the system, in one place (the process's default registry).

Each process exposes the ones it fills: the gateway on its own `/metrics`, the others on
their ops port (shared/ops_server.py). Labels take bounded values only: route templates,
handler and RPC names, platform and arch names, outcome words.
"""

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE_LATEST", "render"]

HTTP_REQUEST_SECONDS = Histogram(
    "albs_http_request_duration_seconds",
    "Gateway HTTP requests by route template, method and status code",
    ["route", "method", "status"],
)
RPC_SECONDS = Histogram(
    "albs_rpc_duration_seconds",
    "RPC round trips from the gateway by RPC name and outcome (ok, error, unavailable, timeout)",
    ["rpc", "outcome"],
)
RPC_TIMEOUTS = Counter(
    "albs_rpc_timeouts_total", "RPCs that got no reply within the timeout, by name", ["rpc"]
)
MESSAGES_HANDLED = Counter(
    "albs_messages_handled_total",
    "Messages handled by a service, by handler and outcome (ok, error, dead_lettered)",
    ["handler", "outcome"],
)
MESSAGE_SECONDS = Histogram(
    "albs_message_handling_duration_seconds", "Time a handler took, by handler", ["handler"]
)
DEAD_LETTERED = Counter(
    "albs_dead_lettered_total", "Messages this process sent to the dead-letter queue", ["queue"]
)
DEAD_LETTERS = Gauge(
    "albs_dead_letters", "Messages waiting in the dead-letter queue (read at scrape time)"
)
TASKS = Gauge(
    "albs_tasks",
    "Unfinished build tasks by state (idle, started), platform and arch",
    ["state", "platform", "arch"],
)
OLDEST_IDLE_SECONDS = Gauge(
    "albs_oldest_idle_task_age_seconds",
    "How long the oldest runnable idle task of each arch has waited",
    ["arch"],
)
LEASES_EXPIRED = Counter(
    "albs_leases_expired_total", "Started tasks requeued because their node's lease expired"
)
OUTBOX_LAG_SECONDS = Gauge(
    "albs_outbox_lag_seconds", "Age of the oldest unpublished outbox row (0 when none)"
)
PULP_SECONDS = Histogram(
    "albs_pulp_request_duration_seconds",
    "Pulp API calls by method and outcome (ok, http_4xx, http_5xx, error)",
    ["method", "outcome"],
)
PULP_ERRORS = Counter(
    "albs_pulp_errors_total", "Pulp API calls that failed (5xx answer or none at all)", ["method"]
)


def render() -> bytes:
    return generate_latest()
