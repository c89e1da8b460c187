"""The security suite reuses the integration fixtures: real databases, a real relay."""

from __future__ import annotations

from ..integration.conftest import (  # noqa: F401 (fixtures)
    clock,
    database_url,
    postgres_cluster,
    postgres_url,
    sqlite_url,
    store,
)
