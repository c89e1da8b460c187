"""A connector put together from its settings: the upstream pool, the trust layer, the
machine id from the data dir, and the status listener; what ``agent-relay host`` runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..tokens import TokenSource
from ..trust.host import TrustHost
from ..trust.keys import HOST_KEY_FILE, load_or_create_host_key
from .connector import Connector, ConnectorConfig
from .forward import ForwardLimits
from .identity import default_name, load_machine_id
from .service import STATUS_FILE, PageSettings, parse_host_port, run_until_signalled
from .upstream import PoolLimits, UpstreamPool, UpstreamTarget


@dataclass(frozen=True, slots=True)
class ConnectorSettings:
    relay_url: str
    upstream: str  # http://HOST:PORT or unix:/path
    tokens: TokenSource
    data_dir: Path
    name: str | None = None  # None: the machine's host name
    ca_file: Path | None = None
    status_listen: str | None = None  # HOST:PORT, or None for no status listener
    max_upstream_connections: int = 256
    upstream_idle_timeout: float = 4.0
    response_timeout: float = 590.0
    max_head_size: int = 128 * 1024  # request head from the relay, response head upstream
    shutdown_timeout: float = 25.0
    allow_unsigned: bool = False
    trusted_keys_file: Path | None = None
    # False: check and sign as the reference host does, without signed headers (the
    # compatibility tests' stand-in for one; AGENT_RELAY_SIGNED_HEADERS=0).
    signed_headers: bool = True
    p2p: bool = False  # answer WebRTC upgrades (needs the signed session: not unsigned)
    stun: tuple[str, ...] = ()
    turn: tuple[str, ...] = ()
    page: PageSettings = field(default_factory=PageSettings)


@dataclass(frozen=True, slots=True)
class AssembledConnector:
    config: ConnectorConfig
    tokens: TokenSource
    target: UpstreamTarget
    limits: PoolLimits
    trust: TrustHost | None
    status_listen: tuple[str, int] | None
    max_head_size: int
    ice: tuple[tuple[str, ...], tuple[str, ...]] | None = None  # --p2p: (stun, turn)
    status_file: Path | None = None  # what `agent-relay host status` reads
    page: PageSettings = field(default_factory=PageSettings)

    async def run_until_signalled(self) -> None:
        """Connects and serves until SIGTERM or SIGINT (the pool and connector are made
        here, inside the running loop)."""
        pool = UpstreamPool(self.target, self.limits, max_head_size=self.max_head_size)
        webrtc = None
        if self.ice is not None and self.trust is not None:  # a channel needs signed sessions
            from ..webrtc.answerer import host_answerer, ice_servers

            webrtc = host_answerer(self.trust, self.target.url, ice_servers(*self.ice))
        connector = Connector(self.config, self.tokens, pool, trust=self.trust, webrtc=webrtc)
        await run_until_signalled(
            connector,
            pool,
            status_listen=self.status_listen,
            status_file=self.status_file,
            page=self.page,
        )


def assemble(settings: ConnectorSettings) -> AssembledConnector:
    """Checks every setting (a bad one raises before anything starts) and builds the
    parts; nothing is dialled or listened on until ``run_until_signalled``."""
    target = UpstreamTarget.parse(settings.upstream)
    listen = (
        parse_host_port(settings.status_listen, "--status-listen")
        if settings.status_listen
        else None
    )
    trust = (
        None
        if settings.allow_unsigned
        else TrustHost.open(
            settings.data_dir,
            trusted_keys_file=settings.trusted_keys_file,
            signed_headers=settings.signed_headers,
        )
    )
    # The same key signs answers and proves the host at connect; unsigned hosts have one too.
    host_key = (
        trust.host_key
        if trust is not None
        else load_or_create_host_key(settings.data_dir / HOST_KEY_FILE)
    )
    config = ConnectorConfig(
        relay_url=settings.relay_url,
        machine_id=load_machine_id(settings.data_dir),
        name=settings.name or default_name(),
        shutdown_timeout=settings.shutdown_timeout,
        forward=ForwardLimits(
            response_timeout=settings.response_timeout, max_head_size=settings.max_head_size
        ),
        ca_file=settings.ca_file,
        host_key=host_key,
    )
    limits = PoolLimits(
        max_connections=settings.max_upstream_connections,
        # Idle ones are kept up to the limit: a busy connector would otherwise open a
        # new connection for a good part of its requests.
        max_idle=settings.max_upstream_connections,
        idle_timeout=settings.upstream_idle_timeout,
    )
    return AssembledConnector(
        config,
        settings.tokens,
        target,
        limits,
        trust,
        listen,
        settings.max_head_size,
        (settings.stun, settings.turn) if settings.p2p else None,
        settings.data_dir / STATUS_FILE,
        settings.page,
    )
