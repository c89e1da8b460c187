"""Session ids grant access (a relay session id is the credential in a proxy path, a
signing session id half of one), so no log line may carry them: this filter, installed
on the command line's log handlers, masks them in every record, whoever logged it
(ours, httpx's request lines, a traceback's text)."""

from __future__ import annotations

import logging
import re

# /v1/relay/h/{host}/s/{session}…: the session part (the host id is no secret).
_PROXY_SESSION = re.compile(r"(/v1/relay/h/[^/?#\s]+/s/)[^/?#\s\"'<>]+")
# A signing session as a header or a query parameter, or in the host's JSON answers.
_SIGNING_SESSION = re.compile(
    r"((?:x-vk-sig-session|signing_session_id)[\"']?\s*[:=]\s*[\"']?)[0-9A-Za-z-]{8,}",
    re.IGNORECASE,
)
MASK = "…"


def redact(text: str) -> str:
    text = _PROXY_SESSION.sub(rf"\g<1>{MASK}", text)
    return _SIGNING_SESSION.sub(rf"\g<1>{MASK}", text)


class RedactSessions(logging.Filter):
    """Rewrites a record's message (and traceback text) with the session ids masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install(logger: logging.Logger | None = None) -> None:
    """Put the filter on every handler of ``logger`` (the root logger by default)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactSessions) for f in handler.filters):
            handler.addFilter(RedactSessions())
