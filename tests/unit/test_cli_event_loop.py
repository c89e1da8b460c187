"""``--event-loop``: server and host run on uvloop where it is installed (a Linux
dependency), on asyncio's own loop when asked, and refuse uvloop plainly without it."""

from __future__ import annotations

import asyncio
import builtins
import sys
from typing import Any

import click
import pytest

from agent_relay.cli.common import loop_factory, run


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uvloop is pinned on Linux")
def test_auto_and_uvloop_run_on_uvloop() -> None:
    assert run(_loop_module(), event_loop="auto").startswith("uvloop")
    assert run(_loop_module(), event_loop="uvloop").startswith("uvloop")


def test_asyncio_runs_on_the_standard_loop() -> None:
    assert loop_factory("asyncio") is None
    assert run(_loop_module(), event_loop="asyncio").startswith("asyncio")


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_import = builtins.__import__

    def no_uvloop(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "uvloop":
            raise ImportError("no uvloop here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    assert loop_factory("auto") is None
    with pytest.raises(click.ClickException, match="uvloop is not installed"):
        loop_factory("uvloop")
