"""`albs`: the command line for operators (tokens, administrators, database migrations)."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import paho.mqtt.publish as mqtt_publish
import typer

from auth.cli_api import register as register_api_commands
from auth.settings import AuthSettings
from auth.users import ensure_user, revoke_tokens_by_name, set_admin_by_name, token_for
from shared.contracts.topology import Topology
from shared.db import migrate
from shared.db.models import UserKind
from shared.db.session import SessionFactory, create_engine, create_session_factory, in_transaction
from shared.errors import AlbsError
from shared.messaging.dead_letters import NoSuchDeadLetter, list_dead_letters, replay_dead_letter
from shared.settings import CommonSettings, load_settings

app = typer.Typer(help="ALBS control plane administration.", no_args_is_help=True)
token_app = typer.Typer(help="Issue and revoke API tokens.", no_args_is_help=True)
user_app = typer.Typer(help="Users and their rights.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(token_app, name="token")
app.add_typer(user_app, name="user")
app.add_typer(db_app, name="db")
register_api_commands(app)  # platform, build, queue: over HTTP (auth/cli_api.py)
dead_app = typer.Typer(help="Messages that failed and were set aside.", no_args_is_help=True)
app.add_typer(dead_app, name="dead-letters")

T = TypeVar("T")
UsernameOption = Annotated[str | None, typer.Option(help="A person's user name.")]
NodeOption = Annotated[str | None, typer.Option(help="A build node's name.")]
SignNodeOption = Annotated[str | None, typer.Option(help="A sign node's name.")]
ServiceOption = Annotated[str | None, typer.Option(help="A service's name (alts, gitea-bridge).")]


def _one_account(
    username: str | None, node: str | None, service: str | None, sign_node: str | None = None
) -> tuple[str, UserKind]:
    offered = (
        (username, UserKind.USER),
        (node, UserKind.NODE),
        (service, UserKind.SERVICE),
        (sign_node, UserKind.SIGN_NODE),
    )
    chosen = [(n, k) for n, k in offered if n]
    if len(chosen) != 1:
        raise typer.BadParameter("give exactly one of --username, --node, --sign-node, --service")
    return chosen[0]


def _run(operation: Callable[[SessionFactory], Awaitable[T]]) -> T:
    """Run one database operation with the operator's settings; business errors end the command."""
    settings = load_settings(AuthSettings)

    async def run() -> T:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            return await operation(create_session_factory(engine))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except (ValueError, AlbsError) as exc:
        raise typer.BadParameter(str(exc)) from None


@token_app.command("create")
def token_create(
    username: UsernameOption = None,
    node: NodeOption = None,
    service: ServiceOption = None,
    sign_node: SignNodeOption = None,
    admin: Annotated[bool, typer.Option(help="Grant administrator rights.")] = False,
    email: Annotated[str | None, typer.Option(help="E-mail of a new user.")] = None,
) -> None:
    """Create the user if needed and print a token for it (only the token, on stdout)."""
    name, kind = _one_account(username, node, service, sign_node)
    if admin and kind != UserKind.USER:
        raise typer.BadParameter("only people (--username) can be administrators")
    user = _run(
        lambda sessions: in_transaction(
            sessions, ensure_user, name, email=email or f"{name}@localhost", kind=kind, admin=admin
        )
    )
    typer.echo(token_for(user, load_settings(AuthSettings)))


@token_app.command("revoke")
def token_revoke(
    username: UsernameOption = None,
    node: NodeOption = None,
    service: ServiceOption = None,
    sign_node: SignNodeOption = None,
) -> None:
    """Invalidate every token issued so far to this user, node, sign node or service."""
    name, kind = _one_account(username, node, service, sign_node)
    _run(lambda sessions: in_transaction(sessions, revoke_tokens_by_name, name, kind))
    typer.echo(f"revoked every earlier token of {kind} '{name}'", err=True)


@user_app.command("admin")
def user_admin(
    username: Annotated[str, typer.Argument(help="The person's user name.")],
    remove: Annotated[
        bool, typer.Option(help="Remove the rights instead of granting them.")
    ] = False,
) -> None:
    """Grant (or with --remove, take away) administrator rights."""
    _run(lambda sessions: in_transaction(sessions, set_admin_by_name, username, not remove))
    verb = "removed from" if remove else "granted to"
    typer.echo(f"administrator rights {verb} '{username}'", err=True)


@db_app.command("upgrade")
def db_upgrade(
    create: Annotated[bool, typer.Option(help="Create the database first if missing.")] = True,
) -> None:
    """Apply every migration (alembic upgrade head) to ALBS_DATABASE_URL."""
    settings = load_settings(CommonSettings)
    if create and asyncio.run(migrate.create_database(settings.database_url)):
        typer.echo("created the database", err=True)
    migrate.upgrade(settings.database_url)
    typer.echo("database is at the latest revision", err=True)


class MessagingSettings(CommonSettings):
    """What the dead-letter commands need: RabbitMQ, and MQTT to send bridge messages back."""

    mqtt_queue_host: str = "127.0.0.1"
    mqtt_queue_port: int = 1883
    mqtt_queue_username: str | None = None
    mqtt_queue_password: str | None = None


@dead_app.command("list")
def dead_letters_list(
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Show at most this many.")] = 50,
) -> None:
    """Show the dead letters, oldest first: id, where it failed, how often, and the error."""
    settings = load_settings(MessagingSettings)
    found = asyncio.run(list_dead_letters(settings.amqp_url, Topology(settings.amqp_prefix), limit))
    for info in found:
        source = info.queue or f"mqtt:{info.mqtt_topic}"
        failures = "?" if info.failures is None else str(info.failures)
        typer.echo(f"{info.message_id}\t{source}\t{failures}\t{info.dead_at or '-'}\t{info.error}")
    typer.echo(f"{len(found)} dead letter(s) shown", err=True)


@dead_app.command("replay")
def dead_letters_replay(
    message_id: Annotated[str, typer.Argument(help="The id `albs dead-letters list` shows.")],
) -> None:
    """Send one dead letter back to the queue (or MQTT topic) it failed in."""
    settings = load_settings(MessagingSettings)

    async def to_mqtt(topic: str, payload: bytes) -> None:
        await asyncio.to_thread(_publish_mqtt, settings, topic, payload)

    try:
        info = asyncio.run(
            replay_dead_letter(
                settings.amqp_url, Topology(settings.amqp_prefix), message_id, to_mqtt
            )
        )
    except NoSuchDeadLetter as exc:
        raise typer.BadParameter(str(exc)) from None
    target = info.queue or f"MQTT topic {info.mqtt_topic}"
    typer.echo(f"replayed {message_id} to {target}", err=True)


def _publish_mqtt(settings: MessagingSettings, topic: str, payload: bytes) -> None:
    auth: mqtt_publish.AuthParameter | None = None
    if settings.mqtt_queue_username:
        auth = {"username": settings.mqtt_queue_username}
        if settings.mqtt_queue_password:
            auth["password"] = settings.mqtt_queue_password
    mqtt_publish.single(
        topic,
        payload,
        qos=1,
        hostname=settings.mqtt_queue_host,
        port=settings.mqtt_queue_port,
        auth=auth,
    )


def main() -> None:
    app()
