"""``python -m agent_relay.cli``."""

from . import main

main()
