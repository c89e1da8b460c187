"""What the store returns: small frozen records, detached from any connection."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


class HostStatus(enum.StrEnum):
    OFFLINE = "offline"
    ONLINE = "online"


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: UUID
    username: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AuthSessionRecord:
    """One ``auth_sessions`` row: the session a JWT's ``session_id`` names."""

    id: UUID
    user_id: UUID
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def idle_since(self) -> datetime:
        return self.last_used_at if self.last_used_at is not None else self.created_at


@dataclass(frozen=True, slots=True)
class HostRecord:
    id: UUID
    owner_user_id: UUID
    shared_with_organization_id: UUID | None
    machine_id: str
    name: str
    status: HostStatus
    last_seen_at: datetime | None
    agent_version: str | None
    created_at: datetime
    updated_at: datetime
    # True when the listing user owns the host, False when it is shared with them.
    owned: bool


@dataclass(frozen=True, slots=True)
class ConnectingHost:
    """What a host's connect needs of its row, in one lookup: its id, the name and agent
    version stored (rewritten only when they change) and its pinned key, if any."""

    id: UUID
    name: str
    agent_version: str | None
    pinned_key: str | None


@dataclass(frozen=True, slots=True)
class ProxyContext:
    """Everything the proxy checks for one relay browser session, loaded in one query.

    ``auth_session`` is None only if its row vanished (the foreign key cascades, so this
    means a race with a delete); ``user_has_access`` is evaluated against the session's
    host and user at load time.
    """

    browser_session_id: UUID
    host_id: UUID
    user_id: UUID
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    auth_session: AuthSessionRecord | None
    user_has_access: bool
