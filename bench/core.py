"""The compiled core against the pure-Python one, in process: µs per call of what each
does per proxied request (parse a request head and a response head, write both, and the
yamux session's receive of one small exchange's frames), best of several runs, so the
machine's load matters little. ``bench/hotpath.py --cores`` measures whole processes.

    .venv/bin/python bench/core.py [--number 20000]
"""

from __future__ import annotations

import argparse
import struct
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from agent_relay import _native  # noqa: E402
from agent_relay.httpwire import codec  # noqa: E402
from agent_relay.mux import connection as mux  # noqa: E402

REQUEST = (
    b"GET /api/workspaces?limit=20 HTTP/1.1\r\n"
    b"Host: relay.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36\r\n"
    b"Accept: application/json, text/plain, */*\r\n"
    b"Accept-Language: en-GB,en;q=0.9\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Referer: https://relay.example.com/\r\n"
    b"Cookie: session=0123456789abcdef0123456789abcdef\r\n"
    b"Connection: keep-alive\r\n"
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"date: Wed, 02 Dec 2026 04:30:00 GMT\r\n"
    b"server: uvicorn\r\n"
    b"content-type: application/json\r\n"
    b"content-length: 61\r\n"
    b"cache-control: no-store\r\n"
)


def _frames() -> bytes:
    """What the connector's session receives for one request: SYN, the head, FIN."""
    head = REQUEST + b"\r\n"
    return (
        struct.pack(">BBHII", 0, 1, 1, 1, 0)
        + struct.pack(">BBHII", 0, 0, 0, 1, len(head))
        + head
        + struct.pack(">BBHII", 0, 1, 4, 1, 0)
    )


class _PureSession(mux.Connection):
    _parse = mux.Connection._parse_pure


class _CompiledSession(mux.Connection):
    _parse = mux.Connection._parse_compiled


def per_call(func: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(func, number=number, repeat=5)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000, help="calls per run [20000]")
    args = parser.parse_args()
    compiled = codec.COMPILED
    if compiled is None:
        sys.exit("bench/core.py: the compiled core is not built (scripts/setup.sh)")
    pure = codec.PURE
    request = codec.parse_request_head_pure(REQUEST)
    response = codec.parse_response_head_pure(RESPONSE)
    frames = _frames()

    def mux_receive(session: type[mux.Connection]) -> Callable[[], object]:
        def run() -> object:
            return session(client=True).receive_data(frames)

        return run

    cases: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
        ("parse request head", lambda: pure[0](REQUEST), lambda: compiled[0](REQUEST)),
        ("parse response head", lambda: pure[1](RESPONSE), lambda: compiled[1](RESPONSE)),
        (
            "write request head",
            lambda: pure[3](b"GET / HTTP/1.1\r\n", request[3]),
            lambda: compiled[3](b"GET / HTTP/1.1\r\n", request[3]),
        ),
        (
            "write response head",
            lambda: pure[3](b"HTTP/1.1 200 OK\r\n", response[3]),
            lambda: compiled[3](b"HTTP/1.1 200 OK\r\n", response[3]),
        ),
        (
            "yamux: new session + one exchange's frames",
            mux_receive(_PureSession),
            mux_receive(_CompiledSession),
        ),
    ]
    print(f"bench/core.py: µs per call, best of 5 x {args.number}; {_native.description}")
    print("| per request | pure | compiled | compiled / pure |")
    print("|---|---:|---:|---:|")
    total_pure = total_compiled = 0.0
    for label, slow, fast in cases:
        a, b = per_call(slow, args.number), per_call(fast, args.number)
        total_pure += a
        total_compiled += b
        print(f"| {label} | {a:.2f} | {b:.2f} | {b / a:.2f} |")
    print(f"| sum | {total_pure:.2f} | {total_compiled:.2f} | {total_compiled / total_pure:.2f} |")


if __name__ == "__main__":
    main()
