"""How many hosts the soak suite plays: ``AGENT_RELAY_SOAK_HOSTS`` (default 200)."""

from __future__ import annotations

import os

SOAK_HOSTS = int(os.environ.get("AGENT_RELAY_SOAK_HOSTS", "200"))
