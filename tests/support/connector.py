"""A real host connector for tests, and waiting for a condition."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

from agent_relay.host import (
    BackoffPolicy,
    Connector,
    ConnectorConfig,
    PoolLimits,
    StaticToken,
    TokenSource,
    UpstreamPool,
    UpstreamTarget,
)

from .relay import Relay

FAST = BackoffPolicy(base=0.05, cap=0.2, reset_after=60.0)


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    for _ in range(int(timeout * 100)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition was not reached in time")


@contextlib.asynccontextmanager
async def running_connector(
    relay: Relay,
    upstream: str,
    *,
    tokens: TokenSource | None = None,
    pool_limits: PoolLimits | None = None,
    wait: bool = True,
    **config: Any,
) -> AsyncIterator[Connector]:
    pool = UpstreamPool(UpstreamTarget.parse(upstream), pool_limits)
    settings = ConnectorConfig(relay_url=relay.url, machine_id="machine-1", name="test-host")
    settings = dataclasses.replace(settings, **{"backoff": FAST, **config})
    connector = Connector(settings, tokens or StaticToken(relay.token), pool)
    running = asyncio.create_task(connector.run())
    try:
        if wait:
            await eventually(lambda: connector.state.connected)
        yield connector
    finally:
        await connector.stop(timeout=5)
        await running
        await pool.close()
