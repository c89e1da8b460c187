"""``bench/e2e.py --quick`` runs end to end (real relay, connectors, sshd and ssh, the
chisel, frp and rathole peers where scripts/bench-tools.sh built them, wrk and curl),
prints its table, and leaves no process behind, also when interrupted. Needs wrk, curl
and openssh-server installed (the bench says so plainly otherwise)."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "e2e.py"
SSHD = "/usr/sbin/sshd"


def leftovers(before: set[int]) -> list[str]:
    """New processes the bench would have started: its temp dir in their command line,
    or sshd (whose per-session processes retitle themselves)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in before:
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            exe = os.readlink(f"/proc/{entry}/exe")
        except OSError:
            continue
        if "agent-relay-e2e-" in cmdline or exe == SSHD:
            found.append(f"{entry}: {cmdline}")
    return found


def pids() -> set[int]:
    return {int(entry) for entry in os.listdir("/proc") if entry.isdigit()}


def wait_gone(before: set[int]) -> list[str]:
    for _ in range(100):
        left = leftovers(before)
        if not left:
            return []
        time.sleep(0.05)
    return left


def test_quick_run_prints_the_table_and_cleans_up() -> None:
    before = pids()
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--no-install"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    table = done.stdout
    header = re.search(r"^\| metric \| direct \| ssh -R \|(.*)\|$", table, re.M)
    assert header is not None, table
    columns = ["direct", "ssh -R", *(name.strip() for name in header.group(1).split("|"))]
    assert columns[-2:] == ["agent-relay", "agent-relay signed"], columns
    for name in ("chisel", "frp", "rathole"):  # a peer not built is named as not run
        assert name in columns or re.search(rf"^Not run: .*{name}", table, re.M), table
    for level in (1, 16, 64, 256):
        cells = re.search(rf"^\| requests/s, c{level} \|(.*)\|$", table, re.M)
        assert cells is not None, table
        numbers = [float(cell.split()[0]) for cell in cells.group(1).split("|")]
        assert len(numbers) == len(columns), table
        rates = dict(zip(columns, numbers, strict=True))
        # Each path answered before it was timed (the bench checks the content); in a 1 s
        # quick run on a loaded machine a peer may finish no request, ours must.
        assert rates["direct"] > 0, table
        assert rates["agent-relay"] > 0, table
        assert rates["agent-relay signed"] > 0, table
    cpu = re.search(r"^\| CPU µs/request, c64: host side \| — \|(.*)\|$", table, re.M)
    assert cpu is not None, table
    assert all(float(cell) > 0 for cell in cpu.group(1).split("|")), cpu
    for direction in ("download", "upload"):
        row = re.search(rf"^\| 16 MiB {direction} \(MB/s\) \| (\d+) \|(.*)\|$", table, re.M)
        assert row is not None, table
        assert int(row.group(1)) > 0
        assert row.group(2).split("|")[-1].strip() == "—"  # curl cannot sign
    assert re.search(r"load average [\d.]+ at the start", table), table
    assert "20 hosts online = the connector + 19 control channels" in table
    assert "N = 10 sessions" in table
    ingress = re.search(r"^\| behind the ingress \| (\d+) \| (\d+) \| (\d+) \|", table, re.M)
    assert ingress is not None, table
    assert all(int(value) > 0 for value in ingress.groups())
    # The drop-in pairings (the reference-like peers come from tests/interop/build.sh).
    assert (
        "| metric | ours+ours | our relay + ref-like host | ref-like relay + our connector |"
        in table
    )
    mixed = re.search(r"^\| requests/s, 1 connection \| (\d+) \| (\d+) \| (\d+) \|$", table, re.M)
    assert mixed is not None, table
    assert all(int(value) > 0 for value in mixed.groups())
    assert wait_gone(before) == []


def test_interrupted_run_stops_everything_it_started() -> None:
    before = pids()
    bench = subprocess.Popen(
        [sys.executable, str(BENCH), "--quick", "--no-install", "-v"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert bench.stderr is not None
        # "ready in …" on stderr: every server and tunnel is up.
        ready, _, _ = select.select([bench.stderr], [], [], 120)
        assert ready, "the bench did not get ready within 120 s"
        line = bench.stderr.readline()
        assert line.startswith("ready in"), line
        bench.send_signal(signal.SIGINT)
        _, err = bench.communicate(timeout=60)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait(10)
    assert bench.returncode == 1
    assert "interrupted; every process it started was stopped" in err
    assert wait_gone(before) == []
