"""Where the connector gets the token it presents to the relay, fresh on every attempt:
a fixed value, a file (re-read each time, so a rotated token is picked up), or a command
(re-run each time; its standard output is the token)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import stat
from pathlib import Path
from typing import Protocol

from ..errors import AgentRelayError

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 30.0
MAX_TOKEN_LENGTH = 16 * 1024


class TokenError(AgentRelayError):
    """No usable token could be had; the message says where it came from and why."""


class TokenSource(Protocol):
    """Something that yields the current token; ``description`` is safe to log."""

    @property
    def description(self) -> str: ...

    async def get(self) -> str: ...


def clean_token(raw: str, where: str) -> str:
    """The token without surrounding whitespace; refuses empty or multi-line values."""
    token = raw.strip()
    if not token:
        raise TokenError(f"{where} gave an empty token")
    if len(token) > MAX_TOKEN_LENGTH or any(c.isspace() or not c.isprintable() for c in token):
        raise TokenError(f"{where} did not give a single-line token")
    return token


class StaticToken:
    def __init__(self, token: str) -> None:
        self._token = clean_token(token, "--token")

    @property
    def description(self) -> str:
        return "--token"

    async def get(self) -> str:
        return self._token


class FileToken:
    """A token file, read anew on every attempt."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._warned = False

    @property
    def description(self) -> str:
        return f"token file {self.path}"

    async def get(self) -> str:
        try:
            info = self.path.stat()
            raw = self.path.read_bytes()
        except OSError as exc:
            raise TokenError(f"cannot read token file {self.path}: {exc.strerror or exc}") from None
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO) and not self._warned:
            # Mounted secrets are often 0644; say so once rather than refuse them.
            self._warned = True
            log.warning("token file %s is readable by other users (chmod 600 it)", self.path)
        return clean_token(raw.decode("utf-8", "replace"), f"token file {self.path}")


class CommandToken:
    """A shell command run on every attempt; its standard output is the token."""

    def __init__(self, command: str, *, timeout: float = COMMAND_TIMEOUT) -> None:
        self.command = command
        self.timeout = timeout

    @property
    def description(self) -> str:
        return "--token-command"

    async def get(self) -> str:
        try:
            process = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                self.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group, to end it whole
            )
        except OSError as exc:
            raise TokenError(f"cannot run the token command: {exc}") from None
        try:
            async with asyncio.timeout(self.timeout):
                out, err = await process.communicate()
        except TimeoutError:
            _kill_group(process)
            await process.communicate()
            raise TokenError(f"the token command did not finish in {self.timeout:g} s") from None
        except asyncio.CancelledError:
            _kill_group(process)
            raise
        if process.returncode != 0:
            lines = err.decode("utf-8", "replace").strip().splitlines()
            detail = f": {lines[-1]}" if lines else ""
            raise TokenError(f"the token command exited with status {process.returncode}{detail}")
        return clean_token(out.decode("utf-8", "replace"), "the token command")


def _kill_group(process: asyncio.subprocess.Process) -> None:
    """End the shell and whatever it started (it leads its own process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
