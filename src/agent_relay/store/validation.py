"""Argument checks shared by the store's methods. Each raises InvalidInput."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from uuid import UUID

from .errors import InvalidInput

MAX_MACHINE_ID_LENGTH = 256
MAX_HOST_NAME_LENGTH = 256
MAX_AGENT_VERSION_LENGTH = 128
MAX_ORGANIZATION_NAME_LENGTH = 256
MAX_BATCH = 10_000
# Stand-alone user names: what is easy to type on a command line.
USERNAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def uuid(value: object, what: str) -> UUID:
    if not isinstance(value, UUID):
        raise InvalidInput(f"{what} must be a UUID, not {type(value).__name__}")
    return value


def uuids(values: object, what: str) -> list[UUID]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise InvalidInput(f"{what} must be a collection of UUIDs")
    result = [uuid(value, what) for value in values]
    if len(result) > MAX_BATCH:
        raise InvalidInput(f"at most {MAX_BATCH} {what} at once")
    return result


def text(value: object, what: str, max_length: int) -> str:
    """Non-empty after trimming, at most max_length characters, no control characters
    (PostgreSQL text cannot even hold NUL)."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string, not {type(value).__name__}")
    value = value.strip()
    if not value:
        raise InvalidInput(f"{what} is empty")
    if len(value) > max_length:
        raise InvalidInput(f"{what} is longer than {max_length} characters")
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in value):
        raise InvalidInput(f"{what} contains control characters")
    return value


def optional_text(value: object, what: str, max_length: int) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and not value.strip():
        return None
    return text(value, what, max_length)


def username(value: object) -> str:
    if not isinstance(value, str) or not USERNAME_PATTERN.fullmatch(value):
        raise InvalidInput(
            "a user name is 1-64 characters of letters, digits and . _ @ -, "
            "starting with a letter or digit"
        )
    return value


def aware_datetime(value: object, what: str) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidInput(f"{what} must be a timezone-aware datetime")
    return value
