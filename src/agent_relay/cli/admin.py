"""``agent-relay users`` and ``tokens``: the stand-alone relay's accounts and the tokens
hosts and clients present to it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .common import DATABASE_ENV, default_data_dir, fail_cleanly, run

if TYPE_CHECKING:
    from ..store import HostRecord

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


@users.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="do not ask")
@admin_options
@fail_cleanly
def users_remove(
    name: str,
    yes: bool,
    database_url: str | None,
    data_dir: Path | None,
    jwt_secret_file: Path | None,
) -> None:
    """Remove the user NAME with their tokens and hosts. A running relay ends their host
    connections and sessions first (their tokens are revoked, then the user deleted)."""
    import asyncio

    from ..store import Store

    if not yes:
        click.confirm(f"remove user {name}, their tokens and their hosts?", abort=True, err=True)

    async def remove() -> None:
        async with await Store.open(database_url, data_dir=data_dir or default_data_dir()) as store:
            record = await store.get_user(name)
            if record is None:
                raise click.ClickException(f"no user {name!r} (see: agent-relay users list)")
            if await store.revoke_user_auth_sessions(record.id):
                # A running relay polls for revocations once a second and cuts what they
                # have open; the rows must outlive that poll for it to see them.
                await asyncio.sleep(REVOCATION_GRACE)
            await store.remove_user(record.id)
            click.echo(f"removed user {record.username} ({record.id})", err=True)

    run(remove())


# relay.revocation.POLL_INTERVAL twice, spelled out so that the CLI needs no relay import.
REVOCATION_GRACE = 2.0


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


@tokens.command("list")
@click.option("--user", default=None, help="only this user's tokens")
@click.option("--all", "show_all", is_flag=True, help="revoked ones too")
@admin_options
@fail_cleanly
def tokens_list(
    user: str | None,
    show_all: bool,
    database_url: str | None,
    data_dir: Path | None,
    jwt_secret_file: Path | None,
) -> None:
    """List issued tokens (their auth sessions; a token itself is never stored):
    session id, user, issued, last used, revoked."""
    from ..store import Store

    async def show() -> None:
        async with await Store.open(database_url, data_dir=data_dir or default_data_dir()) as store:
            names = {u.id: u.username for u in await store.list_users()}
            user_id = None
            if user is not None:
                record = await store.get_user(user)
                if record is None:
                    raise click.ClickException(f"no user {user!r} (see: agent-relay users list)")
                user_id = record.id
            sessions = await store.list_auth_sessions(user_id)
            shown = [s for s in sessions if show_all or s.revoked_at is None]
            if not shown:
                click.echo("no tokens" if show_all else "no live tokens", err=True)
            for s in shown:
                click.echo(
                    "\t".join(
                        (
                            str(s.id),
                            names.get(s.user_id, str(s.user_id)),
                            _when(s.created_at),
                            "used " + _when(s.last_used_at),
                            "revoked " + _when(s.revoked_at) if s.revoked_at else "live",
                        )
                    )
                )

    run(show())


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else "never"


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
    """Hosts registered at the stand-alone relay (each connector's machine, per user)."""


@hosts.command("list")
@click.option("--user", default=None, help="only this user's hosts")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@admin_options
@fail_cleanly
def hosts_list(
    user: str | None,
    as_json: bool,
    database_url: str | None,
    data_dir: Path | None,
    jwt_secret_file: Path | None,
) -> None:
    """List hosts: id, name, owner, online or offline, last seen."""
    import json

    from ..store import Store

    async def show() -> None:
        async with await Store.open(database_url, data_dir=data_dir or default_data_dir()) as store:
            names = {u.id: u.username for u in await store.list_users()}
            found = await store.list_all_hosts()
            if user is not None:
                record = await store.get_user(user)
                if record is None:
                    raise click.ClickException(f"no user {user!r} (see: agent-relay users list)")
                found = [h for h in found if h.owner_user_id == record.id]
            if as_json:
                document = [
                    {
                        "id": str(h.id),
                        "name": h.name,
                        "owner": names.get(h.owner_user_id, str(h.owner_user_id)),
                        "machine_id": h.machine_id,
                        "status": h.status.value,
                        "last_seen_at": h.last_seen_at.isoformat() if h.last_seen_at else None,
                    }
                    for h in found
                ]
                click.echo(json.dumps(document, indent=2))
                return
            if not found:
                click.echo("no hosts", err=True)
            for h in found:
                owner = names.get(h.owner_user_id, str(h.owner_user_id))
                seen = _when(h.last_seen_at)
                click.echo(f"{h.id}\t{h.name}\t{owner}\t{h.status.value}\tlast seen {seen}")

    run(show())


@hosts.command("remove")
@click.argument("host")
@admin_options
@fail_cleanly
def hosts_remove(
    host: str, database_url: str | None, data_dir: Path | None, jwt_secret_file: Path | None
) -> None:
    """Remove the offline host HOST (its id, or its name when only one host has it) and
    its browser sessions. An online host is refused: stop its connector first."""
    from ..store import HostStatus, Store

    async def remove() -> None:
        async with await Store.open(database_url, data_dir=data_dir or default_data_dir()) as store:
            record = pick_host(await store.list_all_hosts(), host)
            if record.status is HostStatus.ONLINE:
                raise click.ClickException(
                    f"host {record.name} ({record.id}) is online: stop its connector first "
                    "(or revoke its token), then remove it"
                )
            await store.remove_host(record.id)
            click.echo(f"removed host {record.name} ({record.id})", err=True)

    run(remove())


def pick_host(found: list[HostRecord], wanted: str) -> HostRecord:
    """The host with this id, or the only one with this name."""
    by_id = [h for h in found if str(h.id) == wanted.strip().lower()]
    if by_id:
        return by_id[0]
    named = [h for h in found if h.name == wanted]
    if len(named) == 1:
        return named[0]
    if named:
        ids = ", ".join(str(h.id) for h in named)
        raise click.ClickException(f"{len(named)} hosts are named {wanted!r} ({ids}): give the id")
    raise click.ClickException(f"no host {wanted!r} (see: agent-relay hosts list)")


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
