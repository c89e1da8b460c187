"""``HOST:PORT`` as every option and variable of ours spells it (IPv6 as ``[::1]:PORT``)."""

from __future__ import annotations


def split_host_port(
    value: str, *, default_host: str | None = None, allow_port_zero: bool = True
) -> tuple[str, int]:
    """``(host, port)``; ValueError when it is not ``HOST:PORT``. An empty host is
    ``default_host`` when one is given, else an error."""
    host, sep, port = value.rpartition(":")
    lowest = 0 if allow_port_zero else 1
    if not sep or not port.isdigit() or not lowest <= int(port) < 65536:
        raise ValueError(f"not HOST:PORT: {value!r}")
    host = host.strip("[]")
    if not host:
        if default_host is None:
            raise ValueError(f"not HOST:PORT: {value!r}")
        host = default_host
    return host, int(port)
