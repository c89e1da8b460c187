"""A throwaway PostgreSQL cluster for the integration tests.

initdb into a temporary directory, start on a free port of 127.0.0.1 with its unix socket
in that directory and durability off (fsync, synchronous_commit, full_page_writes), and
remove everything at the end. PostgreSQL refuses to run as root, so as root every server
program runs as the `postgres` OS user (runuser), which owns the directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "postgres"
BINDIR_ENV = "AGENT_RELAY_PG_BINDIR"


class PostgresNotInstalled(RuntimeError):
    pass


def find_bindir() -> Path:
    """$AGENT_RELAY_PG_BINDIR (set by scripts/test.sh), else initdb on the PATH, else the
    newest /usr/lib/postgresql/<version>/bin."""
    candidates: list[Path] = []
    if configured := os.environ.get(BINDIR_ENV):
        candidates.append(Path(configured))
    elif initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).resolve().parent)
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(
        (Path(p) for p in versions),
        key=lambda p: [int(part) for part in p.parent.name.split(".") if part.isdigit()],
        reverse=True,
    )
    for bindir in candidates:
        if all((bindir / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return bindir
    if os.environ.get(BINDIR_ENV):
        raise RuntimeError(f"{BINDIR_ENV}={os.environ[BINDIR_ENV]} holds no initdb/pg_ctl")
    raise PostgresNotInstalled("PostgreSQL is not installed (run scripts/postgres.sh)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class PostgresCluster:
    bindir: Path
    root: Path
    port: int

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres", *, user: str = SUPERUSER, password: str = "") -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, *, database: str = "postgres") -> str:
        """Runs SQL as the superuser; returns the unaligned, tuples-only output."""
        result = subprocess.run(
            [
                str(self.bindir / "psql"),
                *("-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"),
                *("-d", self.url(database), "-c", sql),
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()}\nSQL: {sql[:500]}")
        return result.stdout

    def create_database(self) -> str:
        name = f"test_{uuid.uuid4().hex[:16]}"
        self.psql(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Stop the server (fast mode: clients are disconnected), as an outage would."""
        pg_ctl = [str(self.bindir / "pg_ctl"), "--pgdata", str(self.data_dir)]
        _check(_run_as_owner([*pg_ctl, "--mode", "fast", "--wait", "stop"]), "pg_ctl stop", self)

    def start(self) -> None:
        """Start it again on the same port (after :meth:`stop`)."""
        pg_ctl = [str(self.bindir / "pg_ctl"), "--pgdata", str(self.data_dir)]
        started = _run_as_owner(
            [
                *pg_ctl,
                *("--log", str(self.log_file), "--options", f"-p {self.port}"),
                *("--wait", "--timeout", "60", "start"),
            ]
        )
        _check(started, "pg_ctl start", self)

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        return ""


def _run_as_owner(args: list[str]) -> subprocess.CompletedProcess[str]:
    if os.geteuid() == 0:
        args = ["runuser", "-u", SUPERUSER, "--", *args]
    return subprocess.run(args, check=False, capture_output=True, text=True, timeout=120)


def _check(result: subprocess.CompletedProcess[str], what: str, cluster: PostgresCluster) -> None:
    if result.returncode != 0:
        raise RuntimeError(
            f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n"
            f"{cluster.log_tail()}"
        )


@contextlib.contextmanager
def running_cluster() -> Iterator[PostgresCluster]:
    bindir = find_bindir()
    root = Path(tempfile.mkdtemp(prefix="agent-relay-pg-"))
    try:
        cluster = PostgresCluster(bindir, root, port=0)
        cluster.socket_dir.mkdir()
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam(SUPERUSER)
            except KeyError:
                raise RuntimeError("running as root needs a `postgres` OS user") from None
            for path in (root, cluster.socket_dir):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        initdb = [str(bindir / "initdb"), "--pgdata", str(cluster.data_dir)]
        initdb += ["--username", SUPERUSER, "--auth", "trust", "--encoding", "UTF8"]
        initdb += ["--locale", "C", "--no-sync"]
        _check(_run_as_owner(initdb), "initdb", cluster)
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{cluster.socket_dir}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            # Tests read the log to see the statements of one call (see test_store).
            "log_line_prefix": "'[%d] '",
        }
        # Appending keeps the file's owner (postgres), also when we are root.
        with (cluster.data_dir / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        pg_ctl = [str(bindir / "pg_ctl"), "--pgdata", str(cluster.data_dir)]
        for attempt in range(3):  # another process may take the free port meanwhile
            cluster = dataclasses.replace(cluster, port=free_port())
            started = _run_as_owner(
                [
                    *pg_ctl,
                    *("--log", str(cluster.log_file), "--options", f"-p {cluster.port}"),
                    *("--wait", "--timeout", "60", "start"),
                ]
            )
            if started.returncode == 0:
                break
            if attempt == 2:
                _check(started, "pg_ctl start", cluster)
        try:
            yield cluster
        finally:
            _run_as_owner([*pg_ctl, "--mode", "immediate", "--wait", "stop"])
    finally:
        shutil.rmtree(root, ignore_errors=True)
