"""The client verbs: ``agent-relay pair``, ``request`` and ``ws``. They print only what
verified, and keep a file unwritten until all of it did."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import sys
import threading
from collections.abc import AsyncIterator, Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from .common import default_data_dir, fail_cleanly, run

if TYPE_CHECKING:
    from ..client import KeyStore, Pairing

WS_LINGER = 1.0


async def run_request(
    pairing: Pairing,
    store: KeyStore,
    token: str | None,
    method: str,
    path: str,
    *,
    body: bytes,
    headers: dict[str, str],
    output: Path | None,
    include: bool,
) -> int:
    from ..client import RelayClient

    async with (
        RelayClient(pairing, token=token, store=store) as client,
        client.stream(method, path, body=body, headers=headers) as response,
    ):
        if include:
            print(f"{response.status}", file=sys.stderr)
            for name, value in response.headers.items():
                print(f"{name}: {value}", file=sys.stderr)
        if output is not None and str(output) != "-":
            size = response.headers.get("content-length")
            shown = Progress(
                lambda: response.received, int(size) if size and size.isdigit() else None
            )
            with shown if sys.stderr.isatty() else contextlib.nullcontext():
                await _to_file(response.iter_bytes(), output)
        else:
            out = sys.stdout.buffer
            check_terminal = output is None and sys.stdout.isatty()
            async for chunk in response.iter_bytes():
                if check_terminal:
                    refuse_binary_on_terminal(response.headers.get("content-type"), chunk)
                    check_terminal = False
                out.write(chunk)
                out.flush()  # a streamed body (SSE) shows as it verifies
        return response.status


_BINARY_TYPES = ("image/", "audio/", "video/", "font/", "application/octet-stream",
                 "application/zip", "application/gzip", "application/pdf")  # fmt: skip


def refuse_binary_on_terminal(content_type: str | None, first: bytes) -> None:
    """A binary answer printed to a terminal garbles it: refuse, saying how to get it."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if b"\x00" in first[:4096] or kind.startswith(_BINARY_TYPES):
        raise click.ClickException(
            f"the answer is binary ({kind or 'it holds NUL bytes'}); not printed to the "
            "terminal: save it with -o FILE, or give -o - to print it anyway"
        )


class Progress:
    """Bytes, rate and time left on one terminal line of stderr, a few times a second,
    while a download runs; the line is ended when it does."""

    INTERVAL = 0.25

    def __init__(self, received: Callable[[], int], total: int | None) -> None:
        self._received = received
        self._total = total
        self._started = 0.0
        self._task: asyncio.Task[None] | None = None

    def __enter__(self) -> Progress:
        import time

        self._started = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._show())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        sys.stderr.write("\r" + self.line() + "\n")
        sys.stderr.flush()

    async def _show(self) -> None:
        while True:
            await asyncio.sleep(self.INTERVAL)
            sys.stderr.write("\r" + self.line() + "\x1b[K")
            sys.stderr.flush()

    def line(self) -> str:
        import time

        done = self._received()
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = done / elapsed
        parts = [_bytes(done) + (f" of {_bytes(self._total)}" if self._total else "")]
        parts.append(f"{_bytes(rate)}/s")
        if self._total and rate > 0 and done < self._total:
            parts.append(f"{(self._total - done) / rate:.0f} s left")
        return "  ".join(parts)


def _bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


async def _to_file(chunks: AsyncIterator[bytes], output: Path) -> None:
    """Into a temporary file beside ``output``, renamed over it only at the verified end."""
    temporary = output.with_name(f".{output.name}.{os.getpid()}.part")
    try:
        with temporary.open("wb") as handle:
            async for chunk in chunks:
                handle.write(chunk)
        os.replace(temporary, output)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


async def run_ws(
    pairing: Pairing, store: KeyStore, token: str | None, path: str, linger: float = WS_LINGER
) -> tuple[int, str]:
    """Returns the host's close code and reason. At the end of standard input the answers
    still on their way get ``linger`` seconds (the host may also close first), then we
    close. A close by the host ends it at once, whatever standard input is doing."""
    from ..client import RelayClient

    lines = _stdin_lines(asyncio.get_running_loop())
    async with (
        RelayClient(pairing, token=token, store=store) as client,
        client.websocket(path) as socket,
    ):

        async def pump_stdin() -> None:
            while True:
                line = await lines.get()
                if line is None:
                    await asyncio.sleep(linger)
                    await socket.send("close", (1000).to_bytes(2, "big"))
                    return
                await socket.send_text(line.rstrip("\n"))

        sender = asyncio.create_task(pump_stdin())
        try:
            while True:
                frame = await socket.recv()
                if frame.msg_type == "close":
                    return frame.close_code()
                if frame.msg_type == "text":
                    print(frame.payload.decode("utf-8", "replace"), flush=True)
                elif frame.msg_type == "binary":
                    print(frame.payload.hex(), flush=True)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender


def _stdin_lines(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str | None]:
    """Standard input's lines, then None at its end, read by a daemon thread: a blocked
    read must not keep the process alive once the WebSocket has closed (the default
    executor's threads are waited for at exit)."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def put(item: str | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: we are exiting
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def read() -> None:
        for line in sys.stdin:
            put(line)
        put(None)

    threading.Thread(target=read, name="stdin", daemon=True).start()
    return queue


def _client_command(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options every client verb shares, and client errors as one-line messages."""
    options = [
        click.option(
            "--relay",
            "relay_url",
            envvar="AGENT_RELAY_URL",
            default=None,
            metavar="URL",
            help="the relay's base URL [env: AGENT_RELAY_URL]",
        ),
        click.option(
            "--host",
            "host_id",
            default=None,
            metavar="HOST",
            help="the host's id, or its name as the relay lists it",
        ),
        click.option(
            "--token",
            envvar="AGENT_RELAY_TOKEN",
            default=None,
            help="the relay token [env: AGENT_RELAY_TOKEN]",
        ),
        click.option(
            "--token-file",
            type=click.Path(path_type=Path, dir_okay=False),
            default=None,
            help="a file holding the relay token",
        ),
        click.option(
            "--data-dir",
            type=click.Path(path_type=Path),
            default=None,
            help="where pairings are kept [env: AGENT_RELAY_DATA_DIR]",
        ),
    ]
    for option in reversed(options):
        func = option(func)

    @wraps(func)
    def explained(*args: Any, **kwargs: Any) -> Any:
        from ..client import ClientError

        if kwargs.get("relay_url") is not None:
            kwargs["relay_url"] = base_url(kwargs["relay_url"])
        try:
            return func(*args, **kwargs)
        except ClientError as exc:
            raise click.ClickException(explain(exc, kwargs.get("relay_url"))) from None

    return fail_cleanly(explained)


def base_url(value: str) -> str:
    """The relay's base URL as stored (an API path pasted after it, ``/v1``…, dropped:
    agent_relay.baseurl)."""
    from ..baseurl import RelayUrl

    return RelayUrl.parse(value).base


def _as_uuid(value: str) -> str | None:
    import uuid

    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def relay_hosts(relay_url: str, token: str) -> list[dict[str, Any]]:
    """The hosts the token's user may reach, as the relay's ``GET /v1/hosts`` lists them;
    an answer that is not that list means the URL is not an agent-relay relay."""
    import httpx

    from .. import __version__

    url = relay_url + "/v1/hosts"
    try:
        response = httpx.get(
            url,
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"agent-relay/{__version__}",
            },
            timeout=15,
            follow_redirects=False,  # a login page would get the token
        )
    except httpx.HTTPError as exc:
        from ..client import ClientError

        raise ClientError(f"cannot reach {url}: {exc}") from None
    if response.status_code in (401, 403):
        raise click.ClickException(
            f"the relay refused the token ({response.status_code}): issue a new one with "
            "`agent-relay tokens issue USER`"
        )
    try:
        hosts = response.json()["hosts"] if response.status_code == 200 else None
    except (ValueError, KeyError, TypeError):
        hosts = None
    if not isinstance(hosts, list):
        raise click.ClickException(
            f"{relay_url} is not an agent-relay relay (GET /v1/hosts answered "
            f"{response.status_code} without a host list)"
        )
    return [h for h in hosts if isinstance(h, dict) and isinstance(h.get("id"), str)]


def choose_host(hosts: list[dict[str, Any]], wanted: str | None) -> dict[str, Any]:
    """The host named ``wanted`` (an online one first), or with none given the only
    online host; otherwise a message listing them."""

    def listing(which: list[dict[str, Any]]) -> str:
        return ", ".join(
            f"{h.get('name')} ({h['id']}, {'online' if h.get('online') else 'offline'})"
            for h in which
        )

    if wanted is None:
        online = [h for h in hosts if h.get("online")]
        if len(online) == 1:
            return online[0]
        if not online:
            known = f"; known: {listing(hosts)}" if hosts else ""
            raise click.ClickException(
                f"no host of this token's user is online: start one with `agent-relay host`{known}"
            )
        raise click.ClickException(
            f"{len(online)} hosts are online: give --host NAME or ID; online: {listing(online)}"
        )
    named = [h for h in hosts if h.get("name") == wanted]
    if len(named) > 1:
        named = [h for h in named if h.get("online")] or named
    if len(named) == 1:
        return named[0]
    if named:
        raise click.ClickException(
            f"{len(named)} hosts are named {wanted!r}: give --host ID; {listing(named)}"
        )
    known = listing(hosts) if hosts else "none"
    raise click.ClickException(f"no host named {wanted!r} at the relay; its hosts: {known}")


def explain(exc: Exception, relay_url: str | None) -> str:
    """A client error in words that say what to do."""
    from ..client import PairingError, RelayRefusedError

    text = str(exc)
    if "WRONG_VERSION_NUMBER" in text:
        plain = (relay_url or "").replace("https://", "http://", 1)
        return f"that port speaks plain HTTP, not TLS: use {plain or 'http://'}"
    if isinstance(exc, PairingError) and "(bad_proof)" in text:
        return (
            "wrong code: it is now used up; make a new one with `agent-relay host pair-code` "
            "and pair again"
        )
    if isinstance(exc, PairingError) and "(code_expired)" in text:
        return (
            "the host has no valid code (expired or already used): make a new one with "
            "`agent-relay host pair-code`"
        )
    if isinstance(exc, RelayRefusedError) and exc.status < 300:
        return f"the local server did not upgrade to a WebSocket (it answered {exc.status})"
    if (
        isinstance(exc, RelayRefusedError)
        and exc.status == 404
        and relay_url
        and "No active relay" not in exc.message
        and "no such route" not in exc.message
    ):
        return f"{relay_url} is not an agent-relay relay (it answered 404)"
    return text


_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def _client_token(token: str | None, token_file: Path | None) -> str | None:
    """--token-file wins over a token from the environment; none is fine when a relay
    session is already stored."""
    from ..tokens import FileToken, clean_token

    source = click.get_current_context().get_parameter_source("token")
    if token_file is not None:
        if token is not None and source is not ParameterSource.ENVIRONMENT:
            raise click.UsageError("give --token or --token-file, not both")
        return run(FileToken(token_file).get())
    if token is None:
        return None
    cleaned = clean_token(token, "--token")
    if not _TOKEN_SHAPE.fullmatch(cleaned):
        where = "AGENT_RELAY_TOKEN" if source is ParameterSource.ENVIRONMENT else "--token"
        raise click.ClickException(
            f"{where} is not a relay token (a JWT: three dot-separated base64url parts, "
            "as `agent-relay tokens issue` prints)"
        )
    return cleaned


def _find(store: KeyStore, relay_url: str | None, host_id: str | None) -> Pairing:
    """The stored pairing that fits; when none does, the message lists what is stored."""
    from ..client import NotPairedError

    stored_pairings = store.all()
    if host_id is not None and _as_uuid(host_id) is None:
        named = [p for p in stored_pairings if p.host_name == host_id]
        if relay_url is not None:
            named = [p for p in named if p.relay_url == base_url(relay_url)]
        if len(named) == 1:
            return named[0]
        if not named:
            raise click.ClickException(
                f"no stored pairing with a host named {host_id!r}; stored: "
                + (", ".join(_describe(p) for p in stored_pairings) or "none")
            )
        raise click.ClickException(
            f"several pairings with a host named {host_id!r}: give --relay or the host's id; "
            + ", ".join(_describe(p) for p in named)
        )
    try:
        return store.find(relay_url, host_id)
    except NotPairedError as exc:
        stored = [_describe(p) for p in stored_pairings]
        where = (
            "; stored: " + ", ".join(stored) if stored else f"; none stored in {store.directory}"
        )
        raise click.ClickException(f"{exc}{where}") from None


def _describe(pairing: Pairing) -> str:
    name = f" ({pairing.host_name})" if pairing.host_name else ""
    return f"host {pairing.host_id}{name} at {pairing.relay_url}"


def _client_store(data_dir: Path | None) -> KeyStore:
    from ..client import KeyStore

    return KeyStore(data_dir or default_data_dir())


@click.command("pair")
@_client_command
@click.option("--code", required=True, help="the 6-character code the host shows")
@click.option(
    "--name", default=None, help="this client's name, as the host lists it [default: MACHINE DATE]"
)
def pair_command(
    relay_url: str | None,
    host_id: str | None,
    token: str | None,
    token_file: Path | None,
    data_dir: Path | None,
    code: str,
    name: str | None,
) -> None:
    """Pair with a host through a relay, using the code it shows
    (agent-relay host pair-code). Keys are kept in the data dir.

    Without --host, the only online host of the token's user is taken; --host takes a
    host's id or its name."""
    import dataclasses
    import socket
    import time

    from ..client import RelayClient

    if relay_url is None:
        raise click.UsageError("pair needs --relay URL")
    relay_token = _client_token(token, token_file)
    if relay_token is None:
        raise click.UsageError(
            "pair needs a relay token: --token, --token-file or AGENT_RELAY_TOKEN"
        )
    if host_id is None or _as_uuid(host_id) is None:
        chosen = choose_host(relay_hosts(relay_url, relay_token), host_id)
    else:
        chosen = _listed(relay_url, relay_token, host_id)
    host_id = chosen["id"]
    host_name = str(chosen.get("name") or "") or None
    store = _client_store(data_dir)
    earlier = _stored(store, relay_url, host_id)
    # Named by machine and time, so that pairing again leaves two tellable-apart entries
    # in the host's list, not two of the same name.
    name = name or f"{socket.gethostname()} {time.strftime('%Y-%m-%d %H:%M:%S')}"
    pairing = run(
        RelayClient.pair(relay_url, host_id, code, token=relay_token, store=store, client_name=name)
    )
    if host_name is not None:
        pairing = dataclasses.replace(pairing, host_name=host_name)
        store.save(pairing)
    called = f" ({host_name})" if host_name else ""
    click.echo(
        f"paired with host {pairing.host_id}{called} at {pairing.relay_url} as client "
        f"{pairing.client_id} ({name!r}); keys in "
        f"{store.path_for(pairing.relay_url, pairing.host_id)}",
        err=True,
    )
    if earlier is not None:
        click.echo(
            f"this replaces the earlier pairing as client {earlier.client_id}, which the host "
            f"still trusts: revoke it there with `agent-relay host clients revoke "
            f"{earlier.client_id}`",
            err=True,
        )


def _listed(relay_url: str, token: str, host_id: str) -> dict[str, Any]:
    """The host as the relay lists it, for its name; best effort (a relay without the
    hosts list still pairs by id)."""
    from ..client import ClientError

    wanted = str(_as_uuid(host_id))
    try:
        listed = relay_hosts(relay_url, token)
    except (click.ClickException, ClientError):
        listed = []
    return next((h for h in listed if h["id"] == wanted), {"id": wanted})


def _stored(store: KeyStore, relay_url: str, host_id: str) -> Pairing | None:
    from ..client import ClientError

    try:
        return store.load(relay_url, host_id)
    except ClientError:
        return None


@click.group("pairings")
def pairings() -> None:
    """The pairings this client keeps (one per relay and host)."""


_pairings_data_dir = click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="where pairings are kept [env: AGENT_RELAY_DATA_DIR]",
)


@pairings.command("list")
@_pairings_data_dir
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@fail_cleanly
def pairings_list(data_dir: Path | None, as_json: bool) -> None:
    """List stored pairings: host id, host name, relay, this client's id."""
    import json

    found = _client_store(data_dir).all()
    if as_json:
        document = [
            {
                "host_id": p.host_id,
                "host_name": p.host_name,
                "relay_url": p.relay_url,
                "client_id": p.client_id,
            }
            for p in found
        ]
        click.echo(json.dumps(document, indent=2))
        return
    if not found:
        click.echo("no pairings", err=True)
    for p in found:
        click.echo(f"{p.host_id}\t{p.host_name or '-'}\t{p.relay_url}\tclient {p.client_id}")


@pairings.command("forget")
@click.argument("host")
@click.option("--relay", "relay_url", default=None, metavar="URL", help="when several fit")
@_pairings_data_dir
@fail_cleanly
def pairings_forget(host: str, relay_url: str | None, data_dir: Path | None) -> None:
    """Delete the stored pairing with HOST (its id or name). The host still trusts this
    client until it is revoked there (`agent-relay host clients revoke CLIENT_ID`)."""
    from ..client import ClientError

    store = _client_store(data_dir)
    try:
        pairing = _find(store, base_url(relay_url) if relay_url else None, host)
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None
    path = store.forget(pairing)
    click.echo(
        f"forgot {_describe(pairing)} ({path}); on the host, revoke client "
        f"{pairing.client_id} with `agent-relay host clients revoke {pairing.client_id}`",
        err=True,
    )


@click.command("request")
@click.argument("method_and_path", nargs=-1, required=True, metavar="[METHOD] PATH")
@_client_command
@click.option(
    "--data",
    "-d",
    default=None,
    help="the request body: text, @FILE, or - for standard input (default method: POST)",
)
@click.option("--header", "-H", "headers", multiple=True, help="an extra header, 'Name: value'")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    default=None,
    help="write the body to FILE (only once all of it verified; progress on a terminal), "
    "or - for standard output even when binary",
)
@click.option(
    "--p2p", is_flag=True, help="try a WebRTC data channel first (needs agent-relay[webrtc])"
)
@click.option("--stun", multiple=True, help="a STUN server HOST:PORT for --p2p (none by default)")
@click.option("--turn", multiple=True, help="a TURN server USER:PASS@HOST:PORT for --p2p")
@click.option("--include", "-i", is_flag=True, help="print the status and headers on stderr")
def request_command(
    method_and_path: tuple[str, ...],
    relay_url: str | None,
    host_id: str | None,
    token: str | None,
    token_file: Path | None,
    data_dir: Path | None,
    data: str | None,
    headers: tuple[str, ...],
    output: Path | None,
    p2p: bool,
    stun: tuple[str, ...],
    turn: tuple[str, ...],
    include: bool,
) -> None:
    """Send a signed request to a paired host through the relay and print the verified
    answer. Exits non-zero when the answer is 4xx/5xx, refused, or fails verification
    (then nothing unverified is printed)."""
    if len(method_and_path) > 2:
        raise click.UsageError("give at most METHOD and PATH")
    path = method_and_path[-1]
    if output is not None and str(output) != "-" and not output.parent.is_dir():
        raise click.ClickException(
            f"cannot write -o {output}: no directory {output.parent} (create it first)"
        )
    method = method_and_path[0] if len(method_and_path) == 2 else ("POST" if data else "GET")
    store = _client_store(data_dir)
    relay_token = _client_token(token, token_file)  # checked before the pairing lookup
    pairing = _find(store, relay_url, host_id)
    send = run_request
    if p2p:
        from ..webrtc.answerer import ice_servers
        from ..webrtc.run import run_p2p_request

        send = functools.partial(run_p2p_request, servers=ice_servers(stun, turn))
        if output is not None and str(output) == "-":
            output = None  # its answers go to standard output as they are
    status = run(
        send(
            pairing,
            store,
            relay_token,
            method,
            path,
            body=_read_data(data),
            headers=_parse_headers(headers),
            output=output,
            include=include,
        )
    )
    if status >= 400:
        raise click.ClickException(f"the host answered {status}")


@click.command("ws")
@click.argument("path")
@_client_command
@click.option(
    "--linger",
    type=click.FloatRange(0),
    default=1.0,
    show_default=True,
    help="seconds to keep reading after the end of standard input, then close",
)
def ws_command(
    path: str,
    relay_url: str | None,
    host_id: str | None,
    token: str | None,
    token_file: Path | None,
    data_dir: Path | None,
    linger: float,
) -> None:
    """Open a signed WebSocket to PATH on a paired host: each line of standard input is
    sent as a text frame, each verified frame from the host is printed as a line."""
    store = _client_store(data_dir)
    relay_token = _client_token(token, token_file)  # checked before the pairing lookup
    pairing = _find(store, relay_url, host_id)
    from ..client import RelayRefusedError

    try:
        code, reason = run(run_ws(pairing, store, relay_token, path, linger))
    except RelayRefusedError as exc:
        if exc.status >= 300 and exc.message == "no details":
            # The relay's own refusals carry a JSON error; a bare one is the local server's
            # (a framework refusing an upgrade to a route that takes none).
            raise click.ClickException(
                f"the local server refused a WebSocket at {path} ({exc.status})"
            ) from None
        raise
    if code not in (1000, 1005):
        raise click.ClickException(f"closed by host: {reason or 'no reason given'} (code {code})")


def _read_data(data: str | None) -> bytes:
    if data is None:
        return b""
    if data == "-":
        return sys.stdin.buffer.read()
    if data.startswith("@"):
        try:
            return Path(data[1:]).read_bytes()
        except OSError as exc:
            raise click.BadParameter(f"cannot read {data[1:]}: {exc.strerror}") from None
    return data.encode()


def _parse_headers(headers: tuple[str, ...]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for header in headers:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(f"not 'Name: value': {header!r}", param_hint="--header")
        parsed[name.strip().lower()] = value.strip()
    return parsed
