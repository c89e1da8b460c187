"""Admission of proxied streams by what their user makes the relay hold
(relay/admission.py): reservations for unanswered streams, the bytes really buffered,
waiting in order, refusal after the wait, and users kept apart."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from agent_relay.relay.admission import AdmissionRefused, BufferAdmission, Ticket

KIB = 1024
ALICE = uuid.UUID(int=1)
BOB = uuid.UUID(int=2)


def admission(**options: float) -> BufferAdmission:
    # Room for four reservations of 64 KiB; short waits.
    values: dict[str, float] = {"reserve": 64 * KIB, "settle": 0.05, "max_wait": 0.3}
    values.update(options)
    return BufferAdmission(256 * KIB, poll=0.01, **values)  # type: ignore[arg-type]


async def test_reservations_fill_the_budget_then_a_request_waits_and_is_refused() -> None:
    gate = admission()
    tickets = [await gate.admit(ALICE) for _ in range(4)]
    assert gate.held_by(ALICE) == 256 * KIB
    with pytest.raises(AdmissionRefused):
        await gate.admit(ALICE)
    assert gate.refused == 1
    for ticket in tickets:
        ticket.close()
    assert gate.held_by(ALICE) == 0
    assert gate.reserved == 0


async def test_a_waiting_request_is_admitted_when_a_stream_ends() -> None:
    gate = admission(max_wait=5.0)
    tickets = [await gate.admit(ALICE) for _ in range(4)]
    waiting = asyncio.create_task(gate.admit(ALICE))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    assert gate.waiting == 1
    tickets[0].close()
    admitted = await asyncio.wait_for(waiting, 1.0)
    assert isinstance(admitted, Ticket)
    for ticket in [*tickets[1:], admitted]:
        ticket.close()


async def test_an_answered_stream_counts_only_what_it_really_holds() -> None:
    gate = admission(max_wait=5.0)
    tickets = [await gate.admit(ALICE) for _ in range(4)]
    # Three answers come, and their clients read: after the settle time their
    # reservations end, so more requests run.
    for ticket in tickets[:3]:
        ticket.answered()
    more = await asyncio.wait_for(asyncio.gather(*(gate.admit(ALICE) for _ in range(3))), 1.0)
    # One client stops reading: the bytes its stream holds count instead.
    tickets[0].account.add(192 * KIB)
    assert gate.held_by(ALICE) == 192 * KIB + 4 * 64 * KIB
    assert gate.total.buffered == 192 * KIB
    with pytest.raises(AdmissionRefused):
        await gate.admit(ALICE)
    tickets[0].account.add(-192 * KIB)  # it read after all
    for ticket in [*tickets, *more]:
        ticket.close()
    assert gate.held_by(ALICE) == 0


async def test_a_stream_that_never_answers_keeps_its_reservation() -> None:
    gate = admission()
    tickets = [await gate.admit(ALICE) for _ in range(4)]
    await asyncio.sleep(0.1)  # longer than settle: no answer, so still reserved
    assert gate.held_by(ALICE) == 256 * KIB
    for ticket in tickets:
        ticket.close()


async def test_one_users_stalled_streams_do_not_hold_back_another_user() -> None:
    gate = admission()
    stalled = [await gate.admit(ALICE) for _ in range(4)]  # never answered: at her budget
    with pytest.raises(AdmissionRefused):
        await gate.admit(ALICE)
    bob = [await gate.admit(BOB) for _ in range(4)]  # a budget of his own
    assert gate.held_by(BOB) == 4 * 64 * KIB
    for ticket in [*stalled, *bob]:
        ticket.close()


async def test_past_twice_the_budget_in_all_a_user_is_held_to_an_eighth() -> None:
    gate = admission(reserve=32 * KIB)  # an eighth of the budget is one reservation
    tickets = []
    for user in (ALICE, BOB):
        tickets += [await gate.admit(user) for _ in range(8)]  # each at the budget
    carol = uuid.UUID(int=3)
    tickets.append(await gate.admit(carol))  # nothing open: always admitted
    with pytest.raises(AdmissionRefused):
        await gate.admit(carol)  # the relay is past twice the budget
    for ticket in tickets:
        ticket.close()


async def test_a_user_with_nothing_open_is_admitted_even_past_the_budget() -> None:
    gate = BufferAdmission(16 * KIB, reserve=64 * KIB, max_wait=0.1)
    ticket = await gate.admit(ALICE)
    with pytest.raises(AdmissionRefused):
        await gate.admit(ALICE)
    ticket.close()


async def test_requests_are_admitted_in_the_order_they_came() -> None:
    gate = admission(max_wait=5.0)
    tickets = [await gate.admit(ALICE) for _ in range(4)]
    order: list[int] = []

    async def wait(number: int) -> Ticket:
        ticket = await gate.admit(ALICE)
        order.append(number)
        return ticket

    waiting = []
    for number in range(3):
        waiting.append(asyncio.create_task(wait(number)))
        await asyncio.sleep(0.01)
    for ticket in tickets[:3]:
        ticket.close()
    admitted = await asyncio.wait_for(asyncio.gather(*waiting), 1.0)
    assert order == [0, 1, 2]
    for ticket in [tickets[3], *admitted]:
        ticket.close()


async def test_a_cancelled_wait_leaves_nothing_behind() -> None:
    gate = admission(max_wait=5.0)
    tickets = [await gate.admit(ALICE) for _ in range(4)]
    waiting = asyncio.create_task(gate.admit(ALICE))
    await asyncio.sleep(0.02)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert gate.waiting == 0
    for ticket in tickets:
        ticket.close()
        ticket.close()  # idempotent
    assert gate.held_by(ALICE) == 0
    assert gate.reserved == 0
    assert not gate._users


async def test_the_queue_of_one_user_is_bounded() -> None:
    gate = admission(queue=2, max_wait=5.0)
    tickets = [await gate.admit(ALICE) for _ in range(4)]
    waiting = [asyncio.create_task(gate.admit(ALICE)) for _ in range(2)]
    await asyncio.sleep(0.02)
    with pytest.raises(AdmissionRefused, match="too many"):
        await gate.admit(ALICE)
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    for ticket in tickets:
        ticket.close()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="positive budget"):
        BufferAdmission(0)
