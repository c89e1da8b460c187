"""What a hop between relay replicas costs (docs/replicas.md).

Three `agent-relay server` replicas on one throwaway PostgreSQL (the e2e harness of
tests/e2e/replicas.py), hosts in this process (yamux hosts answering ``/echo``), load from
``wrk``. In the same run, alternating rounds:

* one connection: a request at the replica that holds the host ("same") against one at
  another replica that forwards it over the replica link ("cross"); p50/p99 latency and
  the relay CPU per request (both replicas' CPU for a cross request), and the difference;
* many connections: requests/s through one replica (its own host) and through three
  (each replica's clients asking for a host held by the next replica: every request
  crosses). On a 2-core machine three replicas share the same two cores, so this ratio
  shows what forwarding costs, not how replicas scale; on separate machines the three
  add up.

    AGENT_RELAY_PG_BINDIR=$(bash scripts/postgres.sh) AGENT_RELAY_CADDY=$(bash scripts/caddy.sh) \\
        .venv/bin/python bench/replicas.py [--seconds 3] [--rounds 2] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.replicas import (  # noqa: E402
    Group,
    RoamingHost,
    make_user,
    running_group,
    session_path,
    wait_online,
)
from tests.support.pgcluster import running_cluster  # noqa: E402

from bench import e2e  # noqa: E402


def relay_cpu(group: Group, indexes: list[int]) -> float:
    return e2e.cpu_seconds([group.replicas[i].process.pid for i in indexes])


async def measure(group: Group, args: argparse.Namespace) -> dict[str, float]:
    await make_user(group, "bench")
    hosts = []
    for index, replica in enumerate(group.replicas):
        host = RoamingHost(replica.url, group.token, f"bench-{index}")
        host.stopped = True  # stays where it is put
        await host.connect()
        hosts.append(host)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            machines = [f"bench-{i}" for i in range(3)]
            ids = await wait_online(client, group, machines)
            paths = [await session_path(client, group, ids[m]) for m in machines]
        urls = {
            "same": f"{group.replicas[0].url}{paths[0]}/echo",
            "cross": f"{group.replicas[1].url}{paths[0]}/echo",
        }
        involved = {"same": [0], "cross": [0, 1]}
        samples: dict[str, list[float]] = {}
        for round_ in range(args.rounds):
            order = ("same", "cross") if round_ % 2 == 0 else ("cross", "same")
            for kind in order:
                before = relay_cpu(group, involved[kind])
                result = await asyncio.to_thread(e2e.wrk, urls[kind], 1, args.seconds)
                spent = relay_cpu(group, involved[kind]) - before
                samples.setdefault(f"{kind}_p50", []).append(result.p50_ms)
                samples.setdefault(f"{kind}_p99", []).append(result.p99_ms)
                samples.setdefault(f"{kind}_cpu", []).append(spent / result.requests * 1e6)
                print(f"round {round_ + 1} {kind} c1: {result}", file=sys.stderr)
            for kind in ("one", "three") if round_ % 2 == 0 else ("three", "one"):
                if kind == "one":
                    targets = [urls["same"]] * 3
                else:
                    targets = [
                        f"{group.replicas[i].url}{paths[(i + 1) % 3]}/echo" for i in range(3)
                    ]
                per = max(1, args.connections // 3)
                results = await asyncio.gather(
                    *(asyncio.to_thread(e2e.wrk, url, per, args.seconds) for url in targets)
                )
                rate = sum(r.rate for r in results)
                samples.setdefault(f"rate_{kind}", []).append(rate)
                print(f"round {round_ + 1} {kind} replica(s): {rate:.0f} req/s", file=sys.stderr)
        return {key: statistics.median(values) for key, values in samples.items()}
    finally:
        for host in hosts:
            await host.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    with (
        running_cluster() as cluster,
        tempfile.TemporaryDirectory() as root,
        running_group(Path(root), cluster) as group,
    ):
        figures = asyncio.run(measure(group, args))
    same, cross = figures["same_p50"], figures["cross_p50"]
    print("replicas: a request at the replica holding the host vs one forwarded over the link")
    print(
        f"  latency p50  same {same:.2f} ms, cross {cross:.2f} ms: "
        f"+{cross - same:.2f} ms ({cross / same:.2f}x)"
    )
    print(f"  latency p99  same {figures['same_p99']:.2f} ms, cross {figures['cross_p99']:.2f} ms")
    print(
        f"  relay CPU per request  same {figures['same_cpu']:.0f} us, cross "
        f"{figures['cross_cpu']:.0f} us (both replicas): "
        f"+{figures['cross_cpu'] - figures['same_cpu']:.0f} us"
    )
    one, three = figures["rate_one"], figures["rate_three"]
    print(
        f"  throughput ({args.connections} connections)  1 replica {one:.0f} req/s, "
        f"3 replicas (every request crossing) {three:.0f} req/s: {three / one:.2f}x"
    )
    print(
        "  (all replicas share this machine's cores: the 3-replica ratio shows the cost of "
        "the hop, not scaling)"
    )


if __name__ == "__main__":
    main()
