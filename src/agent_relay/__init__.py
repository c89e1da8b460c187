"""agent-relay: reach a local agent server through a relay it dials out to."""

__version__ = "0.1.0"
