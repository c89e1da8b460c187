"""The store's SQL layer without a database: rendering to each paramstyle (sql.py) and the
stored representations of values (values.py), which must stay what SQLAlchemy stored."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_relay.store import HostStatus
from agent_relay.store.sql import insert, render
from agent_relay.store.values import Kind, decode, encode, sqlite_timestamp

# -- rendering ---------------------------------------------------------------------------


def test_placeholders_become_each_drivers_paramstyle() -> None:
    sql = "UPDATE hosts SET status = :status, updated_at = :now WHERE id = :id"
    host = uuid.uuid4()
    now = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    params = {"status": HostStatus.ONLINE, "now": now, "id": host}
    assert render(sql, params, "sqlite") == (
        "UPDATE hosts SET status = ?, updated_at = ? WHERE id = ?",
        ["online", "2026-01-02 03:04:05.000006", host.hex],
    )
    assert render(sql, params, "postgresql") == (
        "UPDATE hosts SET status = $1, updated_at = $2 WHERE id = $3",
        ["online", now, host],
    )


def test_a_name_used_twice_is_one_parameter_on_postgres_and_two_on_sqlite() -> None:
    sql = "SELECT :a, :b, :a"
    assert render(sql, {"a": 1, "b": 2}, "postgresql") == ("SELECT $1, $2, $1", [1, 2])
    assert render(sql, {"a": 1, "b": 2}, "sqlite") == ("SELECT ?, ?, ?", [1, 2, 1])


def test_lists_expand_to_one_placeholder_each() -> None:
    sql = "UPDATE hosts SET last_seen_at = :now WHERE id IN (:ids) AND x = :now"
    ids = [uuid.uuid4(), uuid.uuid4()]
    now = datetime(2026, 1, 1, tzinfo=UTC)
    text, args = render(sql, {"now": now, "ids": ids}, "postgresql")
    assert text == "UPDATE hosts SET last_seen_at = $1 WHERE id IN ($2, $3) AND x = $1"
    assert args == [now, *ids]
    text, args = render(sql, {"now": now, "ids": ids}, "sqlite")
    assert text == "UPDATE hosts SET last_seen_at = ? WHERE id IN (?, ?) AND x = ?"
    assert args == ["2026-01-01 00:00:00.000000", ids[0].hex, ids[1].hex, args[0]]
    with pytest.raises(ValueError, match="empty"):
        render(sql, {"now": now, "ids": []}, "sqlite")


def test_casts_are_postgres_only_and_literals_are_left_alone() -> None:
    sql = "SELECT :id::uuid, x::text, ':not_a_param', 'it''s :no' FROM t WHERE y = :y"
    params = {"id": uuid.UUID(int=1), "y": "v"}
    assert render(sql, params, "postgresql")[0] == (
        "SELECT $1::uuid, x::text, ':not_a_param', 'it''s :no' FROM t WHERE y = $2"
    )
    assert render(sql, params, "sqlite")[0] == (
        "SELECT ?, x::text, ':not_a_param', 'it''s :no' FROM t WHERE y = ?"
    )


def test_a_missing_parameter_is_an_error() -> None:
    with pytest.raises(KeyError):
        render("SELECT :a", {}, "sqlite")


def test_statements_without_parameters_pass_as_they_are() -> None:
    assert render("SELECT 1", None, "postgresql") == ("SELECT 1", [])


_names = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True)
_values = st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), min_size=1))


@given(st.lists(_names, min_size=1, max_size=12), st.data())
def test_every_placeholder_gets_its_value_in_order(names: list[str], data: st.DataObject) -> None:
    params: dict[str, object] = {name: data.draw(_values) for name in names}

    def items(name: str) -> list[object]:
        value = params[name]
        return list(value) if isinstance(value, list) else [value]

    sql = " , ".join(f":{name}" for name in names)
    expanded = [item for name in names for item in items(name)]
    text, args = render(sql, params, "sqlite")
    assert args == expanded
    assert text.count("?") == len(args)
    text, args = render(sql, params, "postgresql")
    numbers = [int(n) for n in re.findall(r"\$(\d+)", text)]
    # Numbered in order of first use, each value once, a repeated name reusing its own.
    assert sorted(set(numbers)) == list(range(1, len(args) + 1))
    first = {name: names.index(name) for name in names}
    assert args == [
        item for index, name in enumerate(names) if first[name] == index for item in items(name)
    ]


def test_upserts_spell_on_conflict_alike_on_both() -> None:
    assert insert("t", ["a", "b"]) == "INSERT INTO t (a, b) VALUES (:a, :b)"
    assert insert("t", ["a", "b", "c"], conflict=["a", "b"], update=["c"], returning=["id"]) == (
        "INSERT INTO t (a, b, c) VALUES (:a, :b, :c) "
        "ON CONFLICT (a, b) DO UPDATE SET c = excluded.c RETURNING id"
    )
    assert insert("t", ["a"], conflict=["a"]) == (
        "INSERT INTO t (a) VALUES (:a) ON CONFLICT (a) DO NOTHING"
    )
    assert insert("t", ["a"], conflict=()) == "INSERT INTO t (a) VALUES (:a) ON CONFLICT DO NOTHING"
    with pytest.raises(ValueError, match="conflict"):
        insert("t", ["a"], update=["a"])


# -- values ------------------------------------------------------------------------------


def test_uuids_are_32_hex_digits_on_sqlite_and_native_on_postgres() -> None:
    value = uuid.UUID("3963d3e0-850c-4332-825b-863250f0139e")
    assert encode(value, "sqlite") == "3963d3e0850c4332825b863250f0139e"  # as in the fixture
    assert encode(value, "postgresql") is value
    assert decode("3963d3e0850c4332825b863250f0139e", Kind.UUID) == value
    assert decode(None, Kind.UUID) is None


def test_a_uuid_subclass_of_the_driver_comes_back_as_a_plain_uuid() -> None:
    class DriverUUID(uuid.UUID):
        pass

    value = decode(DriverUUID(int=7), Kind.UUID)
    assert type(value) is uuid.UUID
    assert value == uuid.UUID(int=7)


def test_timestamps_on_sqlite_are_sqlalchemys_text() -> None:
    # The text of tests/integration/store_compat/main_v3.sqlite3 (made by SQLAlchemy).
    value = datetime(2026, 11, 30, 12, 0, 14, 123470, tzinfo=UTC)
    assert encode(value, "sqlite") == "2026-11-30 12:00:14.123470"
    assert encode(datetime(2026, 1, 1, tzinfo=UTC), "sqlite") == "2026-01-01 00:00:00.000000"
    # Another offset is stored as its UTC time.
    eastern = value.astimezone(timezone(timedelta(hours=-5)))
    assert encode(eastern, "sqlite") == "2026-11-30 12:00:14.123470"
    assert encode(eastern, "postgresql") == value
    as_stored = encode(eastern, "postgresql")
    assert isinstance(as_stored, datetime)
    assert as_stored.tzinfo is UTC
    assert decode("2026-11-30 12:00:14.123470", Kind.TIMESTAMP) == value
    # A CURRENT_TIMESTAMP default of the schema: no fraction.
    assert decode("2026-11-30 12:00:14", Kind.TIMESTAMP) == value.replace(microsecond=0)
    with pytest.raises(ValueError, match="timezone-aware"):
        encode(datetime(2026, 1, 1), "sqlite")  # a naive one is refused


def test_the_year_is_padded_to_four_digits() -> None:
    assert sqlite_timestamp(datetime(999, 1, 2, tzinfo=UTC)) == "0999-01-02 00:00:00.000000"


_aware = st.datetimes(
    min_value=datetime(1000, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone.min]),
)


@given(_aware)
def test_timestamps_come_back_equal_and_in_utc(value: datetime) -> None:
    for backend in ("sqlite", "postgresql"):
        back = decode(encode(value, backend), Kind.TIMESTAMP)
        assert back == value
        assert isinstance(back, datetime)
        assert back.tzinfo is UTC


@given(_aware, _aware)
def test_sqlite_text_sorts_as_time_does(a: datetime, b: datetime) -> None:
    # SQLite compares the text: the relay's `revoked_at >= :since` needs this order.
    text_a, text_b = encode(a, "sqlite"), encode(b, "sqlite")
    assert isinstance(text_a, str)
    assert isinstance(text_b, str)
    assert (text_a < text_b) == (a < b)
    assert (text_a == text_b) == (a == b)


def test_booleans_enums_and_plain_values() -> None:
    assert encode(True, "sqlite") == 1
    assert encode(False, "sqlite") == 0
    assert encode(True, "postgresql") is True
    assert encode(HostStatus.OFFLINE, "sqlite") == "offline"
    assert type(encode(HostStatus.OFFLINE, "postgresql")) is str
    assert encode(None, "sqlite") is None
    assert encode(5, "postgresql") == 5
    assert decode(1, Kind.BOOL) is True
    assert decode(0, Kind.BOOL) is False
    with pytest.raises(TypeError):
        encode(object(), "sqlite")
