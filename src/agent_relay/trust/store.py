"""Where the host keeps what outlives a process: the trusted clients (SQLite in the data
directory, or the reference's ``trusted_ed25519_public_keys.json`` when pointed at one)
and the current enrollment code (a small 0600 file, so ``agent-relay host pair-code``
works whether or not a connector is running: the running one reads it when a pairing
starts).

Every write is atomic and every file is 0600.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..keyfile import read_secret_file, write_secret_file
from .keys import HOST_KEY_FILE, load_or_create_host_key

if TYPE_CHECKING:
    import sqlite3

CLIENTS_DB_FILE = "trusted-clients.sqlite3"
CODE_FILE = "enrollment-code.json"


@dataclass(frozen=True, slots=True)
class TrustedClient:
    client_id: str
    client_name: str
    client_browser: str
    client_os: str
    client_device: str
    public_key_b64: str
    paired_at: float = 0.0

    def public_info(self) -> dict[str, Any]:
        return asdict(self)


class ClientStore(Protocol):
    def all(self) -> list[TrustedClient]: ...
    def get(self, client_id: str) -> TrustedClient | None: ...
    def add(self, client: TrustedClient) -> None: ...
    def remove(self, client_id: str) -> bool: ...
    def version(self) -> object:
        """Changes when the stored set may have changed (another process wrote it)."""
        ...


def _file_version(path: Path) -> object:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class SqliteClientStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Created 0600 before SQLite opens it (SQLite gives its journal the same mode).
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.chmod(path, 0o600)
        with self._connect() as db:
            db.execute(
                "create table if not exists trusted_clients ("
                " client_id text primary key, client_name text not null,"
                " client_browser text not null, client_os text not null,"
                " client_device text not null, public_key_b64 text not null,"
                " paired_at real not null)"
            )

    def _connect(self) -> sqlite3.Connection:
        # Imported on first use: a connector that checks no signatures (or keeps its
        # clients in the reference's JSON file) never loads SQLite.
        import sqlite3

        db = sqlite3.connect(self.path, timeout=5.0)
        db.row_factory = sqlite3.Row
        return db

    def _query(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        db = self._connect()
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def all(self) -> list[TrustedClient]:
        rows = self._query("select * from trusted_clients order by paired_at, client_id")
        return [TrustedClient(**dict(row)) for row in rows]

    def get(self, client_id: str) -> TrustedClient | None:
        rows = self._query("select * from trusted_clients where client_id = ?", client_id)
        return TrustedClient(**dict(rows[0])) if rows else None

    def add(self, client: TrustedClient) -> None:
        db = self._connect()
        try:
            with db:
                db.execute(
                    "insert or replace into trusted_clients values (?, ?, ?, ?, ?, ?, ?)",
                    (
                        client.client_id,
                        client.client_name,
                        client.client_browser,
                        client.client_os,
                        client.client_device,
                        client.public_key_b64,
                        client.paired_at,
                    ),
                )
        finally:
            db.close()

    def remove(self, client_id: str) -> bool:
        db = self._connect()
        try:
            with db:
                cursor = db.execute("delete from trusted_clients where client_id = ?", (client_id,))
            return cursor.rowcount > 0
        finally:
            db.close()

    def version(self) -> object:
        return _file_version(self.path)


class JsonClientStore:
    """The reference format: ``{"clients": [{client_id, client_name, client_browser,
    client_os, client_device, public_key_b64}, …]}`` (we add ``paired_at``, which the
    reference ignores). Rewritten whole, atomically, 0600."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> list[TrustedClient]:
        if not self.path.exists():
            return []
        data = json.loads(read_secret_file(self.path) or b"{}")
        clients = []
        for entry in data.get("clients", []):
            clients.append(
                TrustedClient(
                    client_id=str(entry["client_id"]),
                    client_name=str(entry.get("client_name", "")),
                    client_browser=str(entry.get("client_browser", "")),
                    client_os=str(entry.get("client_os", "")),
                    client_device=str(entry.get("client_device", "")),
                    public_key_b64=str(entry["public_key_b64"]),
                    paired_at=float(entry.get("paired_at", 0.0)),
                )
            )
        return clients

    def _save(self, clients: list[TrustedClient]) -> None:
        text = json.dumps({"clients": [c.public_info() for c in clients]}, indent=2)
        write_secret_file(self.path, text.encode() + b"\n")

    def all(self) -> list[TrustedClient]:
        return self._load()

    def get(self, client_id: str) -> TrustedClient | None:
        return next((c for c in self._load() if c.client_id == client_id), None)

    def add(self, client: TrustedClient) -> None:
        clients = [c for c in self._load() if c.client_id != client.client_id]
        self._save([*clients, client])

    def remove(self, client_id: str) -> bool:
        clients = self._load()
        kept = [c for c in clients if c.client_id != client_id]
        if len(kept) == len(clients):
            return False
        self._save(kept)
        return True

    def version(self) -> object:
        return _file_version(self.path)


def open_client_store(data_dir: Path, trusted_keys_file: Path | None = None) -> ClientStore:
    if trusted_keys_file is not None:
        return JsonClientStore(trusted_keys_file)
    return SqliteClientStore(data_dir / CLIENTS_DB_FILE)


@dataclass(frozen=True, slots=True)
class EnrollmentCode:
    code: str
    expires_at: float


class CodeFile:
    """The one current enrollment code. Issuing replaces it; a pairing attempt burns it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def save(self, code: EnrollmentCode) -> None:
        write_secret_file(self.path, json.dumps(asdict(code)).encode())

    def load(self, now: float) -> EnrollmentCode | None:
        """The current code at ``now``, or None (none issued, expired, or unreadable)."""
        try:
            data = json.loads(read_secret_file(self.path))
            code = EnrollmentCode(str(data["code"]), float(data["expires_at"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            self.burn()
            return None
        return code if code.expires_at > now else None

    def burn(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class CodeStore(Protocol):
    """Where the one current enrollment code is kept (``CodeFile``)."""

    def save(self, code: EnrollmentCode) -> None: ...
    def load(self, now: float) -> EnrollmentCode | None: ...
    def burn(self) -> None: ...


@dataclass(frozen=True, slots=True)
class HostStorage:
    """What a TrustHost keeps: its key, its trusted clients and its enrollment code. The
    adapters hand it in (``open_host_storage`` for a data directory), so the trust core
    itself opens no file."""

    host_key: Ed25519PrivateKey
    clients: ClientStore
    codes: CodeStore


def open_host_storage(data_dir: Path, trusted_keys_file: Path | None = None) -> HostStorage:
    """The files of a host's data directory (created 0700): the host key, the trusted
    clients (or ``trusted_keys_file``) and the code file."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return HostStorage(
        host_key=load_or_create_host_key(data_dir / HOST_KEY_FILE),
        clients=open_client_store(data_dir, trusted_keys_file),
        codes=CodeFile(data_dir / CODE_FILE),
    )
