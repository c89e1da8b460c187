"""What pairing leaves on disk, one file per (relay, host) under ``<data dir>/pairings``:
the client's Ed25519 key, its id, the host's public key and the current signing session.
Written atomically with mode 0600 (agent_relay.keyfile); a file others can read is
refused."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..baseurl import RelayUrl
from ..keyfile import read_secret_file, write_secret_file
from ..trust import wire
from .errors import ClientError, NotPairedError

FORMAT_VERSION = 1


def normalize_relay_url(url: str) -> str:
    """The relay's base URL as stored and compared: scheme and host lower case, no
    trailing slash. Refuses anything but http(s)."""
    try:
        return RelayUrl.parse(url).base
    except ValueError as exc:
        raise ClientError(str(exc)) from None


@dataclass(frozen=True)
class Pairing:
    relay_url: str
    host_id: str
    client_id: str
    client_key: Ed25519PrivateKey
    host_public_key: bytes
    signing_session_id: str
    relay_session_id: str | None = None
    # When the signing session began and was last used (unix seconds), so a later run
    # renews it before the host's 1 h / 15 min limits rather than after a refusal.
    session_started_at: float = 0.0
    session_used_at: float = 0.0
    clock_offset: float = 0.0  # host clock minus ours, as last learned (clock.py)
    host_name: str | None = None  # as the relay listed it at pairing, for --host NAME
    # The host verifies signed headers: one of its answers, signature checked, named its
    # own (x-vk-resp-headers). From then on every request signs its headers; never reset
    # (no relay can turn it off). False: requests are signed the reference way.
    signs_headers: bool = False

    @property
    def host_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.host_public_key)

    def with_signing_session(self, session_id: str, now: float) -> Pairing:
        return replace(
            self, signing_session_id=session_id, session_started_at=now, session_used_at=now
        )

    def used(self, now: float) -> Pairing:
        return replace(self, session_used_at=now)

    def with_signed_headers(self) -> Pairing:
        return replace(self, signs_headers=True)

    def with_relay_session(self, session_id: str | None) -> Pairing:
        return replace(self, relay_session_id=session_id)

    def to_json(self) -> bytes:
        document = {
            "version": FORMAT_VERSION,
            "relay_url": self.relay_url,
            "host_id": self.host_id,
            "client_id": self.client_id,
            "client_private_key_b64": wire.b64encode(self.client_key.private_bytes_raw()),
            "host_public_key_b64": wire.b64encode(self.host_public_key),
            "signing_session_id": self.signing_session_id,
            "relay_session_id": self.relay_session_id,
            "session_started_at": self.session_started_at,
            "session_used_at": self.session_used_at,
            "clock_offset": self.clock_offset,
            "host_name": self.host_name,
            "signs_headers": self.signs_headers,
        }
        return (json.dumps(document, indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Pairing:
        try:
            doc: Any = json.loads(data)
            if doc.get("version") != FORMAT_VERSION:
                raise ValueError(f"unknown version {doc.get('version')!r}")
            relay_session = doc.get("relay_session_id")
            return cls(
                relay_url=str(doc["relay_url"]),
                host_id=str(uuid.UUID(doc["host_id"])),
                client_id=str(doc["client_id"]),
                client_key=Ed25519PrivateKey.from_private_bytes(
                    wire.b64decode(doc["client_private_key_b64"], size=32)
                ),
                host_public_key=wire.b64decode(doc["host_public_key_b64"], size=32),
                signing_session_id=str(doc["signing_session_id"]),
                relay_session_id=str(relay_session) if relay_session else None,
                session_started_at=float(doc.get("session_started_at", 0.0)),
                session_used_at=float(doc.get("session_used_at", 0.0)),
                clock_offset=float(doc.get("clock_offset", 0.0)),
                host_name=str(doc["host_name"]) if doc.get("host_name") else None,
                signs_headers=doc.get("signs_headers", False) is True,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ClientError(f"{where} is not a valid pairing file: {exc}") from None


class KeyStore:
    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir / "pairings"

    def path_for(self, relay_url: str, host_id: str) -> Path:
        relay = normalize_relay_url(relay_url)
        tag = hashlib.sha256(relay.encode()).hexdigest()[:12]
        return self.directory / f"{uuid.UUID(host_id)}-{tag}.json"

    def save(self, pairing: Pairing) -> Path:
        path = self.path_for(pairing.relay_url, pairing.host_id)
        write_secret_file(path, pairing.to_json())
        return path

    def load(self, relay_url: str, host_id: str) -> Pairing:
        path = self.path_for(relay_url, host_id)
        if not path.exists():
            raise NotPairedError(
                f"not paired with host {host_id} at {normalize_relay_url(relay_url)}: run "
                "agent-relay pair --relay URL --host HOST_ID --code CODE"
            )
        return Pairing.from_json(read_secret_file(path), str(path))

    def all(self) -> list[Pairing]:
        if not self.directory.is_dir():
            return []
        return [
            Pairing.from_json(read_secret_file(path), str(path))
            for path in sorted(self.directory.glob("*.json"))
        ]

    def forget(self, pairing: Pairing) -> Path:
        """Deletes the pairing's file; returns where it was."""
        path = self.path_for(pairing.relay_url, pairing.host_id)
        path.unlink(missing_ok=True)
        return path

    def find(self, relay_url: str | None, host_id: str | None) -> Pairing:
        """The one pairing that matches what was given (either may be omitted when only
        one stored pairing fits)."""
        if relay_url is not None and host_id is not None:
            return self.load(relay_url, host_id)
        relay = normalize_relay_url(relay_url) if relay_url is not None else None
        host = str(uuid.UUID(host_id)) if host_id is not None else None
        matches = [
            p
            for p in self.all()
            if (relay is None or p.relay_url == relay) and (host is None or p.host_id == host)
        ]
        if not matches:
            raise NotPairedError(
                "no stored pairing fits: run agent-relay pair --relay URL --host HOST_ID "
                "--code CODE"
            )
        if len(matches) > 1:
            hosts = ", ".join(f"{p.host_id} at {p.relay_url}" for p in matches)
            raise ClientError(f"several pairings fit ({hosts}): give --relay and --host")
        return matches[0]
