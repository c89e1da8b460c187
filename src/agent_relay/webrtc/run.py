"""What ``agent-relay request --p2p`` and ``agent-relay host --p2p`` run (kept out of the
CLI module so the CLI stays a few lines)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from ..client.client import RelayClient
from ..client.keystore import KeyStore, Pairing
from .offerer import P2PClient, P2POptions
from .peer import IceServer, require_aiortc


async def run_p2p_request(
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
    servers: Sequence[IceServer] = (),
) -> int:
    """One call, over a data channel when one opens, else through the relay."""
    require_aiortc()
    async with RelayClient(pairing, token=token, store=store) as relay:
        client = P2PClient(relay, P2POptions(ice_servers=servers))
        try:
            answer = await client.request(method, path, body=body, headers=headers)
        finally:
            await client.aclose()
    if include:
        print(f"{answer.status} (via {answer.path})", file=sys.stderr)
        for name, value in answer.headers.items():
            print(f"{name}: {value}", file=sys.stderr)
        if client.last_error:
            print(f"webrtc: {client.last_error}", file=sys.stderr)
    if output is not None:
        temporary = output.with_name(f".{output.name}.part")
        temporary.write_bytes(answer.body)
        temporary.replace(output)
    else:
        sys.stdout.buffer.write(answer.body)
        sys.stdout.buffer.flush()
    return answer.status
