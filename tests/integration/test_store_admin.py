"""The store's operator methods (users remove, tokens list, hosts list/remove) on SQLite
and on PostgreSQL."""

from __future__ import annotations

from uuid import uuid4

from agent_relay.store import Store


async def test_remove_user_takes_their_sessions_and_hosts(store: Store) -> None:
    alice = await store.add_user("alice")
    bob = await store.add_user("bob")
    login = await store.issue_auth_session(alice.id)
    host = await store.upsert_host(alice.id, "m-1", "laptop")
    browser = await store.create_browser_session(host, alice.id, login.id)
    kept = await store.issue_auth_session(bob.id)
    assert await store.remove_user(alice.id)
    assert not await store.remove_user(alice.id)
    assert await store.get_user("alice") is None
    assert await store.get_auth_session(login.id) is None
    assert await store.get_host(host) is None
    assert await store.load_proxy_context(browser) is None
    assert [s.id for s in await store.list_auth_sessions()] == [kept.id]


async def test_list_auth_sessions_all_or_one_user(store: Store) -> None:
    alice = await store.add_user("alice")
    bob = await store.add_user("bob")
    first = await store.issue_auth_session(alice.id)
    second = await store.issue_auth_session(bob.id)
    third = await store.issue_auth_session(alice.id)
    assert await store.revoke_auth_session(third.id)
    every = await store.list_auth_sessions()
    assert {s.id for s in every} == {first.id, second.id, third.id}
    mine = await store.list_auth_sessions(alice.id)
    assert {s.id for s in mine} == {first.id, third.id}
    assert next(s for s in mine if s.id == third.id).revoked_at is not None


async def test_list_all_hosts_and_remove_one(store: Store) -> None:
    alice = await store.add_user("alice")
    bob = await store.add_user("bob")
    one = await store.upsert_host(alice.id, "m-1", "b-laptop")
    two = await store.upsert_host(bob.id, "m-2", "a-desktop")
    assert [h.id for h in await store.list_all_hosts()] == [two, one]  # by name
    assert await store.remove_host(one)
    assert not await store.remove_host(one)
    assert not await store.remove_host(uuid4())
    assert [h.id for h in await store.list_all_hosts()] == [two]
