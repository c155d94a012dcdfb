"""`albs`: the command line for operators (tokens, database migrations)."""

import asyncio
from typing import Annotated

import typer

from auth.settings import AuthSettings
from auth.users import ensure_user, token_for
from shared.db import migrate
from shared.db.models import UserKind
from shared.db.session import create_engine, create_session_factory, in_transaction
from shared.settings import CommonSettings, load_settings

app = typer.Typer(help="ALBS control plane administration.", no_args_is_help=True)
token_app = typer.Typer(help="Issue API tokens.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(token_app, name="token")
app.add_typer(db_app, name="db")


@token_app.command("create")
def token_create(
    username: Annotated[str | None, typer.Option(help="A person's user name.")] = None,
    node: Annotated[str | None, typer.Option(help="A build node's name.")] = None,
    service: Annotated[
        str | None, typer.Option(help="A service's name (alts, gitea-bridge).")
    ] = None,
    admin: Annotated[bool, typer.Option(help="Grant administrator rights.")] = False,
    email: Annotated[str | None, typer.Option(help="E-mail of a new user.")] = None,
) -> None:
    """Create the user if needed and print a token for it (only the token, on stdout)."""
    chosen = [
        (n, k)
        for n, k in ((username, UserKind.USER), (node, UserKind.NODE), (service, UserKind.SERVICE))
        if n
    ]
    if len(chosen) != 1:
        raise typer.BadParameter("give exactly one of --username, --node, --service")
    name, kind = chosen[0]
    if admin and kind != UserKind.USER:
        raise typer.BadParameter("only people (--username) can be administrators")
    settings = load_settings(AuthSettings)
    try:
        token = asyncio.run(
            _create_token(settings, name, kind, admin, email or f"{name}@localhost")
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(token)


async def _create_token(
    settings: AuthSettings, name: str, kind: UserKind, admin: bool, email: str
) -> str:
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        user = await in_transaction(
            create_session_factory(engine), ensure_user, name, email=email, kind=kind, admin=admin
        )
    finally:
        await engine.dispose()
    return token_for(user, settings)


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


def main() -> None:
    app()
