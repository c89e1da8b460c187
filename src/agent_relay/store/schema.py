"""Tables, with the names and columns of the reference schema (docs/protocol.md section 10).

In shared mode the remote API owns ``users``, ``organizations``, ``auth_sessions`` and
``organization_member_metadata`` and has more columns than these; the relay reads only the
columns named here and writes only ``hosts`` and ``relay_browser_sessions``. In
stand-alone mode ddl.py creates exactly these (``users`` and ``organizations`` then hold
just what the admin commands need).

Column values are stored as values.py says (UUIDs, UTC timestamps); the result columns
that need converting back are listed in the ``*_KINDS`` mappings.
"""

from __future__ import annotations

from collections.abc import Mapping

from .values import Kind

HOST_COLUMNS = (
    "id",
    "owner_user_id",
    "shared_with_organization_id",
    "machine_id",
    "name",
    "status",
    "last_seen_at",
    "agent_version",
    "created_at",
    "updated_at",
)
AUTH_SESSION_COLUMNS = ("id", "user_id", "created_at", "last_used_at", "revoked_at")
BROWSER_SESSION_COLUMNS = (
    "id",
    "host_id",
    "user_id",
    "auth_session_id",
    "created_at",
    "last_used_at",
    "revoked_at",
)

_UUIDS = (
    "id",
    "user_id",
    "host_id",
    "owner_user_id",
    "shared_with_organization_id",
    "auth_session_id",
    "organization_id",
)
_TIMESTAMPS = (
    "created_at",
    "updated_at",
    "last_used_at",
    "revoked_at",
    "last_seen_at",
    "joined_at",
    "pinned_at",
)

# Result columns by name: what each holds when its driver value needs converting. Every
# table uses these names alike; ``auth_``-prefixed ones are an auth session's in a join.
KINDS: Mapping[str, Kind] = {
    **{name: Kind.UUID for name in _UUIDS},
    **{name: Kind.TIMESTAMP for name in _TIMESTAMPS},
    **{f"auth_{name}": Kind.UUID for name in ("id", "user_id")},
    **{f"auth_{name}": Kind.TIMESTAMP for name in ("created_at", "last_used_at", "revoked_at")},
    "owned": Kind.BOOL,
    "user_has_access": Kind.BOOL,
}

# The tables the relay writes in shared mode; the others it only reads there.
RELAY_OWNED_TABLES = ("hosts", "relay_browser_sessions")
REMOTE_OWNED_TABLES = ("users", "auth_sessions", "organization_member_metadata")
