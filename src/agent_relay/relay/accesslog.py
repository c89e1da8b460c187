"""The access log: one line per proxied exchange, on the ``agent_relay.access`` logger.

It says what an operator needs (method, host, path, status, bytes each way, duration) and
never what grants access: the relay session id is not in it, nor the query string (local
agent servers put tokens there)."""

from __future__ import annotations

import logging
import uuid

log = logging.getLogger("agent_relay.access")


def log_exchange(
    method: str,
    host_id: uuid.UUID,
    path: str,
    status: int,
    bytes_up: int,
    bytes_down: int,
    seconds: float,
) -> None:
    fields = {
        "method": method,
        "host_id": str(host_id),
        "path": path.partition("?")[0],
        "status": status,
        "bytes_up": bytes_up,
        "bytes_down": bytes_down,
        "duration_ms": round(seconds * 1000, 1),
    }
    log.info(
        "%(method)s host=%(host_id)s %(path)s %(status)d up=%(bytes_up)dB "
        "down=%(bytes_down)dB %(duration_ms).1fms",
        fields,
        extra={"access": fields},
    )
