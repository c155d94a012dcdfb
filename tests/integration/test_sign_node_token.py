"""`albs token create --sign-node NAME`: a Sign Node's account and token, from the CLI."""

from typer.testing import CliRunner

from auth.cli import app
from shared.db.models import UserKind
from shared.tokens import decode_token
from tests.support.fixtures import JWT_SECRET


def test_the_cli_mints_a_sign_node_token_and_refuses_to_make_it_an_admin(
    service_env: dict[str, str],
) -> None:
    runner = CliRunner()
    made = runner.invoke(app, ["token", "create", "--sign-node", "signer-cli"], env=service_env)
    assert made.exit_code == 0, made.output
    claims = decode_token(JWT_SECRET, made.stdout.strip())
    assert claims.kind == UserKind.SIGN_NODE

    admin = ["token", "create", "--sign-node", "signer-cli", "--admin"]
    refused = runner.invoke(app, admin, env=service_env)
    assert refused.exit_code != 0
    twice = runner.invoke(
        app, ["token", "create", "--node", "n", "--sign-node", "s"], env=service_env
    )
    assert twice.exit_code != 0
    assert "exactly one of" in twice.output
