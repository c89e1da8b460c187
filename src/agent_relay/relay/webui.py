"""The remote web UI at ``/``: the page and its bundle from the package's ``web/static/``,
with a Content-Security-Policy that lets it load and talk to nothing but this origin.

Same-origin with the API, so no CORS is involved; the proxied answers it reads are
sandboxed (isolation.py), which is what makes serving both from one origin safe. Files are
read once, at the first request, and kept in memory (a few hundred KiB at most).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..httpwire.server import Exchange
from ..web import STATIC_DIR

UI_PREFIX = "/ui/"
_INDEX = "index.html"
_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
    ".ico": b"image/x-icon",
}
# 'self' covers ws:/wss: to this host in CSP 3; no inline script or style anywhere.
PAGE_POLICY = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; "
    b"frame-ancestors 'none'"
)
_HEADERS = [
    (b"content-security-policy", PAGE_POLICY),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


@dataclass(frozen=True, slots=True)
class _File:
    body: bytes
    content_type: bytes
    etag: bytes


class WebUi:
    def __init__(self, directory: Path = STATIC_DIR) -> None:
        self._directory = directory
        self._files: dict[str, _File] | None = None

    def serves(self, path: str) -> bool:
        return path == "/" or path.startswith(UI_PREFIX)

    def _load(self) -> dict[str, _File]:
        if self._files is None:
            files = {}
            for entry in sorted(self._directory.iterdir()):
                content_type = _TYPES.get(entry.suffix)
                if entry.is_file() and content_type is not None:
                    body = entry.read_bytes()
                    etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'
                    files[entry.name] = _File(body, content_type, etag)
            self._files = files
        return self._files

    async def serve(self, ex: Exchange, path: str) -> None:
        """Answer GET/HEAD for ``/`` (the page) and ``/ui/NAME`` (its files)."""
        name = _INDEX if path == "/" else path.removeprefix(UI_PREFIX)
        found = self._load().get(name)
        if ex.method not in ("GET", "HEAD"):
            await ex.respond_json(405, {"error": "use GET"}, headers=[(b"allow", b"GET, HEAD")])
            return
        if found is None:
            await ex.respond_json(404, {"error": "no such file"})
            return
        headers = [*_HEADERS, (b"etag", found.etag), (b"cache-control", b"no-cache")]
        if ex.header(b"if-none-match") == found.etag:
            await ex.respond(304, headers=headers)
            return
        body = b"" if ex.method == "HEAD" else found.body
        await ex.respond(200, body, content_type=found.content_type, headers=headers)
