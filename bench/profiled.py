"""Run ``agent-relay ARGS…`` under cProfile and write the stats to a file on exit.

    python bench/profiled.py OUT.prof server --listen …

Used by ``bench/hotpath.py --profile``; the product code carries no profiling hooks.
With ``AGENT_RELAY_PROFILE_CLOCK=cpu`` the profile counts the process's CPU time rather
than wall time (a write that waits on a busy machine then costs only what it used).
"""

from __future__ import annotations

import cProfile
import os
import sys
import time


def main() -> None:
    out = sys.argv[1]
    sys.argv = ["agent-relay", *sys.argv[2:]]
    from agent_relay.cli import main as cli_main

    if os.environ.get("AGENT_RELAY_PROFILE_CLOCK") == "cpu":
        profile = cProfile.Profile(time.process_time)
    else:
        profile = cProfile.Profile()
    profile.enable()
    try:
        cli_main()
    finally:
        profile.disable()
        profile.dump_stats(out)


if __name__ == "__main__":
    main()
