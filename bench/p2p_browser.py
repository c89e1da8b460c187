"""The WebRTC upgrade from the browser: the SDK in headless Chromium over the data channel
against the same SDK through the relay, in one run and one stack on loopback (the real
relay on SQLite, the real connector with its aiortc answerer and a local server in this
process; Chromium beside it). Compare the rows, not against other benches.

Measured in the page for ``GET /echo`` (a small JSON answer): latency p50/p99 one at a
time and requests/s with 16 in flight; and MiB/s of a streamed download (verified record
by record either way; over the channel with the streamed-body extension). Needs Debian's
chromium (scripts/chromium.sh) and clients/browser/node_modules (scripts/browser.sh).

    .venv/bin/python bench/p2p_browser.py [--requests 300] [--seconds 5] [--download-mib 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.test_webrtc_e2e import webrtc_stack  # noqa: E402

MIB = 1024 * 1024


async def main(args: argparse.Namespace) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("chromium is missing: bash scripts/chromium.sh")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        url = f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}"
        async with webrtc_stack(tmp_path, url) as stack:
            config = {
                "clientsDir": str(ROOT / "clients" / "browser"),
                "chromium": chromium,
                "relay": stack.relay.url,
                "token": stack.relay.token,
                "hostId": stack.host_id,
                "code": stack.trust.issue_code(time.time()).code,
                "requests": args.requests,
                "seconds": args.seconds,
                "downloadBytes": args.download_mib * MIB,
            }
            process = await asyncio.create_subprocess_exec(
                "node",
                str(Path(__file__).with_name("p2p_browser.mjs")),
                json.dumps(config),
                stdout=asyncio.subprocess.PIPE,
                env={**os.environ, "NODE_OPTIONS": ""},
            )
            out, _ = await process.communicate()
            if process.returncode != 0:
                sys.exit(f"bench/p2p_browser.mjs failed ({process.returncode})")
            figures = json.loads(out.decode().strip().splitlines()[-1])
            served = stack.answerer.stats.http_served
    load = os.getloadavg()
    print(
        f"bench/p2p_browser.py: Chromium + one process, loopback, load {load[0]:.2f} {load[1]:.2f}"
    )
    print("(the machine is shared with other work: compare the rows, not the absolutes)")
    print(f"{'path':<10}{'p50 ms (1)':>12}{'p99 ms (1)':>12}{'req/s (16)':>12}{'MiB/s':>9}")
    for name in ("channel", "relay"):
        row = figures[name]
        print(
            f"{name:<10}{row['p50']:>12.2f}{row['p99']:>12.2f}{row['rps']:>12.0f}{row['mibps']:>9.1f}"
        )
    c, r = figures["channel"], figures["relay"]
    print(
        f"channel/relay: p50 {c['p50'] / r['p50']:.2f}x, p99 {c['p99'] / r['p99']:.2f}x, "
        f"req/s {c['rps'] / r['rps']:.2f}x, {args.download_mib} MiB download "
        f"{c['mibps'] / r['mibps']:.2f}x"
    )
    print(f"(host-side counter: {served} requests served over the channel)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--download-mib", type=int, default=100)
    asyncio.run(main(parser.parse_args()))
