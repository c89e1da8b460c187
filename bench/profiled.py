"""Run ``agent-relay ARGS…`` under cProfile and write the stats to a file on exit.

    python bench/profiled.py OUT.prof server --listen …

Used by ``bench/hotpath.py --profile``; the product code carries no profiling hooks.
"""

from __future__ import annotations

import cProfile
import sys


def main() -> None:
    out = sys.argv[1]
    sys.argv = ["agent-relay", *sys.argv[2:]]
    from agent_relay.cli import main as cli_main

    profile = cProfile.Profile()
    profile.enable()
    try:
        cli_main()
    finally:
        profile.disable()
        profile.dump_stats(out)


if __name__ == "__main__":
    main()
