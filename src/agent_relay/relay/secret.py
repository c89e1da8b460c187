"""Which JWT secret the relay signs and checks tokens with: the environment, else a file
named on the command line, else (stand-alone) one kept in the data dir, made on first
start."""

from __future__ import annotations

import os
from pathlib import Path

from ..keyfile import read_secret_file, write_secret_file
from .auth import SECRET_ENV, JwtSecret, SecretError

SECRET_FILE_NAME = "jwt-secret"  # noqa: S105 - a file name, not a secret


def resolve_secret(secret_file: Path | None, data_dir: Path, *, create: bool) -> JwtSecret:
    """The secret in force; with ``create`` a stand-alone relay makes and keeps one."""
    if os.environ.get(SECRET_ENV):
        return JwtSecret.from_environment()
    if secret_file is not None:
        return _from_file(secret_file)
    kept = data_dir / SECRET_FILE_NAME
    if kept.exists():
        return _from_file(kept)
    if not create:
        raise SecretError(
            f"no JWT secret: set {SECRET_ENV}, pass --jwt-secret-file, or start the relay once "
            f"to create {kept}"
        )
    secret = JwtSecret.generate()
    write_secret_file(kept, (secret.to_base64() + "\n").encode())
    return secret


def require_secret(secret_file: Path | None) -> None:
    """The reference sidecar refuses to start without a configured secret; so does ours."""
    if not os.environ.get(SECRET_ENV) and secret_file is None:
        raise SecretError(f"{SECRET_ENV} must be set (standard base64, at least 32 bytes)")


def _from_file(path: Path) -> JwtSecret:
    return JwtSecret.from_base64(read_secret_file(path).decode("ascii", "replace"), name=str(path))
