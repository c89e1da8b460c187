"""Statements as SQL text with named parameters, rendered to each backend's paramstyle.

The store writes its SQL once, in the dialect both backends share, with ``:name``
placeholders. :func:`render` turns one into the driver's form: ``?`` for sqlite3
(positional, a name used twice is passed twice) and ``$1, $2, …`` for asyncpg (a name
used twice is one parameter). Two additions to plain placeholders:

- ``IN (:ids)`` with a list or tuple value expands to one placeholder per element (the
  caller keeps lists short and never empty; the store chunks them).
- ``:name::type`` casts the parameter on PostgreSQL only (``$1::uuid``), where the type
  cannot be inferred (a value in a SELECT list); SQLite gets a bare ``?``, since a CAST
  there would change the stored text (``CAST(x AS uuid)`` has NUMERIC affinity).

Text inside single quotes and PostgreSQL ``::`` casts of columns are left alone.
Values are converted by values.encode.
"""

# ruff: noqa: S608 - SQL text from constants; every value goes as a parameter
from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence

from .values import Backend, encode

# A quoted literal (kept), a ``::`` cast (kept), or a placeholder with an optional cast.
_TOKEN = re.compile(r"'(?:[^']|'')*'|::[A-Za-z_]\w*|:([A-Za-z_]\w*)(?:::([A-Za-z_]\w*))?")

# A parsed statement: text pieces between placeholders, and the placeholders (name, cast).
_Parsed = tuple[tuple[str, ...], tuple[tuple[str, str | None], ...]]


@functools.lru_cache(maxsize=512)
def _parse(text: str) -> _Parsed:
    pieces: list[str] = []
    names: list[tuple[str, str | None]] = []
    start = 0
    for match in _TOKEN.finditer(text):
        if match.group(1) is None:
            continue
        pieces.append(text[start : match.start()])
        names.append((match.group(1), match.group(2)))
        start = match.end()
    pieces.append(text[start:])
    return tuple(pieces), tuple(names)


def render(
    text: str, params: Mapping[str, object] | None, backend: Backend
) -> tuple[str, list[object]]:
    """The statement in the backend's paramstyle and its positional arguments, encoded.
    Raises KeyError for a placeholder without a value, ValueError for an empty list."""
    pieces, names = _parse(text)
    if not names:
        return text, []
    assert params is not None, "the statement has placeholders"
    out = [pieces[0]]
    args: list[object] = []
    numbered: dict[str, str] = {}  # asyncpg: a name's placeholder(s), once numbered
    for (name, cast), piece in zip(names, pieces[1:], strict=True):
        value = params[name]
        if backend == "postgresql" and name in numbered:
            out.append(numbered[name])
        else:
            values = value if isinstance(value, (list, tuple)) else None
            items = [value] if values is None else list(values)
            if values is not None and not items:
                raise ValueError(f"the list :{name} is empty")
            marks = []
            for item in items:
                args.append(encode(item, backend))
                if backend == "postgresql":
                    marks.append(f"${len(args)}" + (f"::{cast}" if cast else ""))
                else:
                    marks.append("?")
            numbered[name] = ", ".join(marks)
            out.append(numbered[name])
        out.append(piece)
    return "".join(out), args


def insert(
    table: str,
    columns: Sequence[str],
    *,
    conflict: Sequence[str] | None = None,
    update: Sequence[str] = (),
    returning: Sequence[str] = (),
) -> str:
    """``INSERT INTO table (columns) VALUES (:column, …)``, with an upsert clause when
    ``conflict`` is given: ``ON CONFLICT (conflict) DO UPDATE SET`` each ``update`` column
    to the value that was to be inserted, or ``DO NOTHING`` when ``update`` is empty
    (with ``conflict=()``: whatever the conflict). Both backends spell it the same."""
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) "
        f"VALUES ({', '.join(':' + column for column in columns)})"
    )
    if conflict is not None:
        target = f" ({', '.join(conflict)})" if conflict else ""
        if update:
            assignments = ", ".join(f"{column} = excluded.{column}" for column in update)
            sql += f" ON CONFLICT{target} DO UPDATE SET {assignments}"
        else:
            sql += f" ON CONFLICT{target} DO NOTHING"
    elif update:
        raise ValueError("update needs a conflict target")
    if returning:
        sql += f" RETURNING {', '.join(returning)}"
    return sql
