"""What tables, columns and unique keys a database has: the catalog, read-only.

PostgreSQL: the current schema (``current_schema()``, normally ``public``) through
pg_catalog. SQLite: sqlite_master and the table PRAGMAs.
"""

from __future__ import annotations

from .pool import Connection

_PG_TABLES = """
SELECT c.relname AS name FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
"""
_PG_COLUMNS = """
SELECT a.attname AS name FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relname = :table AND a.attnum > 0
  AND NOT a.attisdropped
"""
# Unique constraints and unique indexes, not partial ones (ON CONFLICT cannot use those
# without their predicate) and not the primary key.
_PG_UNIQUE_KEYS = """
SELECT i.indexrelid AS key, a.attname AS column_name
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (i.indkey)
WHERE n.nspname = current_schema() AND c.relname = :table
  AND i.indisunique AND NOT i.indisprimary AND i.indpred IS NULL
"""


async def table_names(conn: Connection) -> set[str]:
    if conn.backend == "postgresql":
        rows = await conn.fetch(_PG_TABLES)
    else:
        rows = await conn.fetch(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite~_%' ESCAPE '~'"
        )
    return {str(row["name"]) for row in rows}


async def column_names(conn: Connection, table: str) -> set[str]:
    if conn.backend == "postgresql":
        rows = await conn.fetch(_PG_COLUMNS, {"table": table})
    else:
        rows = await conn.fetch("SELECT name FROM pragma_table_info(:table)", {"table": table})
    return {str(row["name"]) for row in rows}


async def unique_keys(conn: Connection, table: str) -> list[set[str]]:
    """The column sets of the table's unique constraints and indexes."""
    keys: dict[object, set[str]] = {}
    if conn.backend == "postgresql":
        for row in await conn.fetch(_PG_UNIQUE_KEYS, {"table": table}):
            keys.setdefault(row["key"], set()).add(str(row["column_name"]))
        return list(keys.values())
    indexes = await conn.fetch(
        "SELECT name FROM pragma_index_list(:table) "
        "WHERE \"unique\" AND origin != 'pk' AND NOT partial",
        {"table": table},
    )
    for index in indexes:
        columns = await conn.fetch(
            "SELECT name FROM pragma_index_info(:index)", {"index": index["name"]}
        )
        # An expression has no name; it is no column of the key.
        keys[index["name"]] = {str(c["name"]) for c in columns if c["name"] is not None}
    return list(keys.values())
