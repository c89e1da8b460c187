"""The one TLS client policy, for the connector, the client SDK and the doctor."""

from __future__ import annotations

import ssl
from pathlib import Path


def tls_context(ca_file: Path | None = None) -> ssl.SSLContext:
    """Certificate verification on, against the system's roots (OpenSSL also reads
    ``SSL_CERT_FILE`` and ``SSL_CERT_DIR``) plus ``ca_file`` when given: a private CA in
    front of a self-hosted relay then needs no change to the system's trust store."""
    context = ssl.create_default_context()
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot use {ca_file} as a CA file: {exc}") from None
    return context
