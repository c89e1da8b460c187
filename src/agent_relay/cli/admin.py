"""``agent-relay users`` and ``tokens``: the stand-alone relay's accounts and the tokens
hosts and clients present to it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from .common import DATABASE_ENV, default_data_dir, fail_cleanly, run

# relay.auth.MAX_TTL, spelled out so that parsing needs no import of the relay.
MAX_TTL = timedelta(days=3650)


def parse_ttl(value: str) -> timedelta:
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", value)
    if not match:
        raise click.BadParameter(
            "use a number with s, m, h or d, for example 30d or 12h", param_hint="--ttl"
        )
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    lifetime = timedelta(seconds=int(match.group(1)) * unit)
    if not timedelta(0) < lifetime <= MAX_TTL:
        raise click.BadParameter(
            f"a token must live more than 0 seconds and at most {MAX_TTL.days} days; got {value!r}",
            param_hint="--ttl",
        )
    return lifetime


def admin_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--jwt-secret-file", type=click.Path(path_type=Path, exists=True), default=None
    )(func)
    func = click.option("--data-dir", type=click.Path(path_type=Path), default=None)(func)
    func = click.option("--database-url", envvar=DATABASE_ENV, default=None)(func)
    return func


@click.group()
def users() -> None:
    """Stand-alone user accounts."""


@users.command("add")
@click.argument("name")
@admin_options
@fail_cleanly
def users_add(
    name: str, database_url: str | None, data_dir: Path | None, jwt_secret_file: Path | None
) -> None:
    """Create the user NAME."""
    from ..store import Store

    async def add() -> None:
        async with await Store.open(database_url, data_dir=data_dir or default_data_dir()) as store:
            user = await store.add_user(name)
            click.echo(f"added user {user.username} ({user.id})", err=True)

    run(add())


@users.command("list")
@admin_options
@fail_cleanly
def users_list(
    database_url: str | None, data_dir: Path | None, jwt_secret_file: Path | None
) -> None:
    """List the users."""
    from ..store import Store

    async def show() -> None:
        async with await Store.open(database_url, data_dir=data_dir or default_data_dir()) as store:
            for user in await store.list_users():
                click.echo(f"{user.username}\t{user.id}\t{user.created_at.isoformat()}")

    run(show())


@click.group()
def tokens() -> None:
    """Tokens that hosts and clients present to the relay."""


@tokens.command("issue")
@click.argument("user")
@click.option("--ttl", default="30d", show_default=True, help="lifetime: 3600, 15m, 12h, 30d")
@click.option("--link", metavar="RELAY_URL", default=None, help="also print a web UI sign-in link")
@admin_options
@fail_cleanly
def tokens_issue(
    user: str,
    ttl: str,
    link: str | None,
    database_url: str | None,
    data_dir: Path | None,
    jwt_secret_file: Path | None,
) -> None:
    """Print a new token for USER (a name or id) on stdout."""
    from ..relay.auth import issue_token
    from ..relay.secret import resolve_secret
    from ..store import Store
    from ..web.links import sign_in_block, ui_base

    lifetime = parse_ttl(ttl)
    if link is not None:
        ui_base(link)  # a bad URL fails before a token is made
    data_dir = data_dir or default_data_dir()
    secret = resolve_secret(jwt_secret_file, data_dir, create=True)

    async def issue() -> None:
        async with await Store.open(database_url, data_dir=data_dir) as store:
            record = await store.get_user(user)
            if record is None:
                raise click.ClickException(
                    f"no user {user!r} (add one: agent-relay users add NAME)"
                )
            issued = await issue_token(store, secret, record.id, lifetime)
            click.echo(issued.token)
            if link is not None:
                click.echo(sign_in_block(link, issued.token))
            click.echo(
                f"expires {issued.expires_at.isoformat()}; session {issued.auth_session_id}",
                err=True,
            )

    run(issue())


@tokens.command("revoke")
@click.argument("token", required=False)
@click.option("--user", default=None, help="revoke every token of this user")
@click.option("--session", "session_id", default=None, help="revoke one auth session by id")
@admin_options
@fail_cleanly
def tokens_revoke(
    token: str | None,
    user: str | None,
    session_id: str | None,
    database_url: str | None,
    data_dir: Path | None,
    jwt_secret_file: Path | None,
) -> None:
    """Revoke TOKEN, or --session ID, or every token of --user NAME."""
    from ..relay.auth import AuthError, session_id_of_token
    from ..relay.secret import resolve_secret
    from ..store import Store

    if sum(x is not None for x in (token, user, session_id)) != 1:
        raise click.UsageError("give exactly one of TOKEN, --user or --session")
    data_dir = data_dir or default_data_dir()

    async def revoke() -> None:
        async with await Store.open(database_url, data_dir=data_dir) as store:
            if user is not None:
                record = await store.get_user(user)
                if record is None:
                    raise click.ClickException(f"no user {user!r}")
                revoked = await store.revoke_user_auth_sessions(record.id)
                click.echo(f"revoked {len(revoked)} session(s) of {record.username}", err=True)
                return
            if token is not None:
                secret = resolve_secret(jwt_secret_file, data_dir, create=False)
                try:
                    target = session_id_of_token(secret, token)
                except AuthError as exc:
                    raise click.ClickException(f"not a token of this relay: {exc}") from None
            else:
                try:
                    target = uuid.UUID(str(session_id))
                except ValueError:
                    raise click.BadParameter("not a session id", param_hint="--session") from None
            if not await store.revoke_auth_session(target):
                raise click.ClickException(f"no active session {target}")
            click.echo(f"revoked session {target}", err=True)

    run(revoke())


@click.group()
def hosts() -> None:
    """Hosts registered at this relay."""


@hosts.command("reset-key")
@click.argument("host_id")
@click.option("--shared", is_flag=True, help="the database is the remote API's (shared mode)")
@admin_options
@fail_cleanly
def hosts_reset_key(
    host_id: str,
    shared: bool,
    database_url: str | None,
    data_dir: Path | None,
    jwt_secret_file: Path | None,
) -> None:
    """Forget the host key pinned to HOST_ID: its next connect that proves a key binds
    it anew (after its data directory, and so its key, was replaced on purpose)."""
    from ..store import Store, StoreMode

    try:
        target = uuid.UUID(host_id)
    except ValueError:
        raise click.BadParameter("not a host id (a UUID)", param_hint="HOST_ID") from None

    async def reset() -> None:
        mode = StoreMode.SHARED if shared else StoreMode.STANDALONE
        async with await Store.open(
            database_url, mode=mode, data_dir=data_dir or default_data_dir()
        ) as store:
            if await store.get_host(target) is None:
                raise click.ClickException(f"no host {target}")
            if await store.reset_host_key(target):
                click.echo(
                    f"host {target}: key binding removed; its next connect pins one", err=True
                )
            else:
                click.echo(f"host {target} had no pinned key", err=True)

    run(reset())
