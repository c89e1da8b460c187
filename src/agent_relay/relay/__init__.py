"""The relay service: configuration, JWT auth, routes, tunnel registry, proxy.

Import the submodules you need (``agent_relay.relay.auth``, …); this package imports
nothing on its own so that loading one part does not pull in the others.
"""
