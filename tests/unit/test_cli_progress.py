"""The download progress line and the binary-on-a-terminal rule of `agent-relay request`."""

from __future__ import annotations

import click
import pytest

from agent_relay.cli.client import Progress, refuse_binary_on_terminal


def test_progress_line_with_a_known_size_says_time_left() -> None:
    line = Progress(lambda: 2_500_000, 10_000_000).line()
    assert line.startswith("2.5 MB of 10.0 MB  ")
    assert line.endswith(" s left")
    assert "/s" in line


def test_progress_line_when_done_has_no_time_left() -> None:
    line = Progress(lambda: 999, 999).line()
    assert line.startswith("999 B of 999 B  ")
    assert "left" not in line


@pytest.mark.parametrize(
    ("content_type", "first"),
    [("image/png", b"\x89PNG"), (None, b"abc\x00def"), ("application/octet-stream", b"text")],
)
def test_binary_is_refused(content_type: str | None, first: bytes) -> None:
    with pytest.raises(click.ClickException, match="not printed to the terminal"):
        refuse_binary_on_terminal(content_type, first)


@pytest.mark.parametrize(
    ("content_type", "first"),
    [("application/json", b"{}"), ("text/event-stream", b"data: x\n\n"), (None, "é".encode())],
)
def test_text_is_printed(content_type: str | None, first: bytes) -> None:
    refuse_binary_on_terminal(content_type, first)
