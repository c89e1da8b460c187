"""The relay's table of live tunnels: which host is reachable over which yamux session."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from ..mux import MuxSession


@dataclass(eq=False)
class Tunnel:
    """One host's control channel, and the proxied requests running over it."""

    host_id: uuid.UUID
    session: MuxSession
    max_streams: int
    connected_at: float = field(default_factory=time.time)
    in_flight: int = 0

    def try_acquire(self) -> bool:
        """Take a slot for one proxied request; False when the host is at its limit."""
        if self.in_flight >= self.max_streams:
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight -= 1


class TunnelRegistry:
    def __init__(self) -> None:
        self._tunnels: dict[uuid.UUID, Tunnel] = {}

    def register(self, tunnel: Tunnel) -> Tunnel | None:
        """Make ``tunnel`` the host's live one; return the one it replaced, to be closed."""
        previous = self._tunnels.get(tunnel.host_id)
        self._tunnels[tunnel.host_id] = tunnel
        return previous if previous is not tunnel else None

    def unregister(self, tunnel: Tunnel) -> bool:
        """Forget ``tunnel`` unless a newer connection already replaced it."""
        if self._tunnels.get(tunnel.host_id) is tunnel:
            del self._tunnels[tunnel.host_id]
            return True
        return False

    def get(self, host_id: uuid.UUID) -> Tunnel | None:
        tunnel = self._tunnels.get(host_id)
        if tunnel is None or tunnel.session.closed:
            return None
        return tunnel

    def is_online(self, host_id: uuid.UUID) -> bool:
        return self.get(host_id) is not None

    def __len__(self) -> int:
        return len(self._tunnels)

    def host_ids(self) -> list[uuid.UUID]:
        """The hosts with a live tunnel."""
        return [h for h, t in self._tunnels.items() if not t.session.closed]

    def tunnels(self) -> list[Tunnel]:
        return list(self._tunnels.values())

    @property
    def in_flight(self) -> int:
        return sum(t.in_flight for t in self._tunnels.values())
