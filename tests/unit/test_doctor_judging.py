"""The doctor's pure judging: answers in, findings out (the cases the integration tests
cannot stage cheaply: clock skew, tokens from the future, a proxy's 502, a relay that
accepts anything)."""

from __future__ import annotations

import base64
import json
from email.utils import formatdate

import pytest

from agent_relay.doctor import (
    Answer,
    Status,
    Target,
    judge_clock,
    judge_connect_probe,
    judge_token,
    parse_target,
)

NOW = 1_800_000_000.0


def relay_json(status: int, error: str) -> Answer:
    return Answer(
        status, {"content-type": "application/json"}, json.dumps({"error": error}).encode()
    )


def jwt(claims: dict[str, object]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJIUzI1NiJ9.{body}.c2ln"


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("https://relay.example", Target("https", "relay.example", 443, "")),
        ("http://127.0.0.1:8082/", Target("http", "127.0.0.1", 8082, "")),
        ("wss://relay.example:8443/base/", Target("https", "relay.example", 8443, "/base")),
        ("https://[::1]:9/", Target("https", "::1", 9, "")),
    ],
)
def test_parse_target(url: str, target: Target) -> None:
    assert parse_target(url) == target


@pytest.mark.parametrize("url", ["ftp://x", "relay.example", "https://u:p@x", "https://x/?a=1"])
def test_parse_target_refuses(url: str) -> None:
    with pytest.raises(ValueError, match="relay URL"):
        parse_target(url)


def test_clock_skew_is_a_warning_with_the_direction() -> None:
    close = judge_clock(formatdate(NOW, usegmt=True), NOW + 5)
    assert close is not None
    assert close.status is Status.OK
    ahead = judge_clock(formatdate(NOW, usegmt=True), NOW + 125)
    assert ahead is not None
    assert ahead.status is Status.WARN
    assert ahead.message == "this clock is 125 s ahead of the relay's"
    behind = judge_clock(formatdate(NOW, usegmt=True), NOW - 40)
    assert behind is not None
    assert "behind" in behind.message
    assert judge_clock(None, NOW) is None
    assert judge_clock("not a date", NOW) is None


def test_token_from_the_future_blames_the_clock() -> None:
    token = jwt({"iat": NOW + 600, "exp": NOW + 3600})
    finding = judge_token(relay_json(401, "invalid token"), token, NOW)
    assert finding.status is Status.FAIL
    assert finding.hint is not None
    assert "clock" in finding.hint
    assert "expires" in finding.message


def test_accepted_token_reports_its_expiry() -> None:
    finding = judge_token(
        relay_json(400, "expected a WebSocket upgrade"), jwt({"exp": NOW + 7200}), NOW
    )
    assert finding.status is Status.OK
    assert finding.message.endswith("(in 2.0 h)")


def test_a_token_accepted_inside_the_leeway_is_not_ok_and_says_expired() -> None:
    finding = judge_token(
        relay_json(400, "expected a WebSocket upgrade"), jwt({"exp": NOW - 3}), NOW
    )
    assert finding.status is Status.WARN
    assert finding.message == (
        "the token has expired (3 s ago); the relay still accepts it for a short grace "
        "for clock skew, then refuses it"
    )
    assert finding.hint is not None
    assert "tokens issue" in finding.hint


def test_proxy_that_cannot_reach_the_relay() -> None:
    finding = judge_connect_probe(Answer(502, {"content-type": "text/plain"}, b"Bad Gateway"))
    assert finding.status is Status.FAIL
    assert "cannot reach the relay" in finding.message


def test_a_relay_that_accepts_an_invalid_token_is_a_failure() -> None:
    finding = judge_connect_probe(Answer(101, {"upgrade": "websocket"}, b""))
    assert finding.status is Status.FAIL
    assert "invalid token was accepted" in finding.message


def test_stripped_upgrade_headers() -> None:
    finding = judge_connect_probe(Answer(426, {"content-type": "text/plain"}, b"Upgrade Required"))
    assert finding.status is Status.FAIL
    assert finding.hint is not None
    assert "Upgrade" in finding.hint
