"""The browser SDK in headless Chromium: what signing every request and verifying every
answer costs against a plain ``fetch``, through the same relay code to the same sample
server.

Two demos run in this process: one with the host's signature checks (the page pairs with
it and calls ``relayFetch``), one with ``--allow-unsigned`` (the page calls ``fetch`` on its
relay path). Measured in the browser: p50/p90 latency of ``GET /api/whoami`` one at a
time, requests/s with 8 in flight, and MB/s of a streamed 100 MiB ``GET /api/blob``
(verified record by record when signed). Printed as figures and as signed/unsigned
ratios. Needs Debian's chromium (scripts/chromium.sh) and clients/browser/node_modules
(scripts/browser.sh).

    .venv/bin/python bench/browser.py [--seconds 5] [--mib 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from agent_relay.demo.run import Demo

ROOT = Path(__file__).resolve().parents[1]


async def measure(args: argparse.Namespace) -> dict[str, object]:
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("chromium is missing: bash scripts/chromium.sh")
    with tempfile.TemporaryDirectory() as tmp:
        signed = Demo(Path(tmp) / "signed", port=0)
        unsigned = Demo(Path(tmp) / "unsigned", port=0, allow_unsigned=True)
        try:
            signed_urls = await signed.start()
            unsigned_urls = await unsigned.start()
            config = {
                "clientsDir": str(ROOT / "clients" / "browser"),
                "chromium": chromium,
                "relay": signed_urls.relay,
                "token": signed_urls.token,
                "hostId": str(signed_urls.host_id),
                "code": signed_urls.code,
                "unsignedBase": unsigned_urls.browse.rstrip("/"),
                "sequential": 200,
                "seconds": args.seconds,
                "concurrency": 8,
                "downloadBytes": args.mib * 1024 * 1024,
            }
            process = await asyncio.create_subprocess_exec(
                "node",
                str(Path(__file__).with_name("browser.mjs")),
                json.dumps(config),
                stdout=asyncio.subprocess.PIPE,
                env={**os.environ, "NODE_OPTIONS": ""},
            )
            out, _ = await process.communicate()
            if process.returncode != 0:
                sys.exit(f"bench/browser.mjs failed ({process.returncode})")
            figures: dict[str, object] = json.loads(out.decode().strip().splitlines()[-1])
            return figures
        finally:
            await signed.stop()
            await unsigned.stop()


def report(f: dict[str, object]) -> str:
    def num(key: str, sub: str | None = None) -> float:
        value = f[key]
        return float(value[sub] if sub is not None else value)  # type: ignore[index, arg-type]

    lines = [
        "browser SDK in headless Chromium (same machine, shared with other work: loaded)",
        f"  latency p50: unsigned fetch {num('unsignedLatency', 'p50'):.2f} ms, "
        f"signed+verified relayFetch {num('signedLatency', 'p50'):.2f} ms "
        f"(+{num('signedLatency', 'p50') - num('unsignedLatency', 'p50'):.2f} ms, "
        f"x{num('signedLatency', 'p50') / num('unsignedLatency', 'p50'):.2f})",
        f"  latency p90: unsigned {num('unsignedLatency', 'p90'):.2f} ms, "
        f"signed {num('signedLatency', 'p90'):.2f} ms",
        f"  requests/s (8 in flight): unsigned {num('unsignedRps'):.0f}, "
        f"signed {num('signedRps'):.0f} (ratio {num('signedRps') / num('unsignedRps'):.2f})",
        f"  100 MiB download: unsigned {num('unsignedMBps'):.1f} MB/s, verified "
        f"{num('signedMBps'):.1f} MB/s (ratio {num('signedMBps') / num('unsignedMBps'):.2f})",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per requests/s run")
    parser.add_argument("--mib", type=int, default=100, help="download size")
    args = parser.parse_args()
    figures = asyncio.run(measure(args))
    print(report(figures))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
