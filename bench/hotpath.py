"""The relay's per-request hot path alone: the sample server reached directly and through
``agent-relay server`` + ``agent-relay host`` (the same processes as ``bench/e2e.py``,
without ssh and the memory runs), so a change can be measured in seconds.

Prints requests/s with 1 and 64 connections, CPU time per request of the relay and the
connector, and the MB/s of a streamed download, each as a ratio to the direct path
measured in the same run. With ``--profile relay`` (or ``connector``) that process runs
under cProfile (``bench/profiled.py``) and its top functions are printed afterwards
(figures then include the profiler's own cost).

    .venv/bin/python bench/hotpath.py [--seconds 3] [--rounds 2] [--profile relay]

``--cores`` runs two relay + connector pairs side by side instead, one on the compiled
core and one on the pure-Python core (``AGENT_RELAY_PURE_PYTHON=1``), measured in
interleaved rounds under the same load, with their CPU per request at c1 and c64.
"""

from __future__ import annotations

import argparse
import io
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent_relay import _native  # noqa: E402
from bench import e2e  # noqa: E402

PROFILED = ROOT / "bench" / "profiled.py"


class _Processes(e2e.Processes):
    """Starts the process named ``profile`` (relay / connector-0) under cProfile."""

    def __init__(self, logs: Path, profile: str | None) -> None:
        super().__init__(logs)
        self.profile = profile

    def start(self, name: str, argv: list[str], *, pipe: bool = False) -> subprocess.Popen[bytes]:
        if self.profile is not None and name == self.profile:
            argv = [sys.executable, str(PROFILED), str(self.logs / "profile.out"), *argv[1:]]
        return super().start(name, argv, pipe=pipe)


def measure(setup: e2e.Setup, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    assert setup.relay is not None
    assert setup.connector is not None
    pids = {"relay": [setup.relay.pid], "connector": [setup.connector.pid]}
    samples: dict[str, dict[str, list[float]]] = {"direct": {}, "agent-relay": {}}
    for round_ in range(args.rounds):
        for connections in (1, 64):
            for path in ("direct", "agent-relay") if round_ % 2 == 0 else ("agent-relay", "direct"):
                url = setup.base(path) + e2e.SMALL_PATH
                before = {k: e2e.cpu_seconds(v) for k, v in pids.items()}
                result = e2e.wrk(url, connections, args.seconds)
                figures = {f"rate{connections}": result.rate}
                if path == "agent-relay":
                    for key, group in pids.items():
                        spent = e2e.cpu_seconds(group) - before[key]
                        figures[f"cpu_{key}{connections}"] = spent / result.requests * 1e6
                for key, value in figures.items():
                    samples[path].setdefault(key, []).append(value)
                print(f"round {round_ + 1} {path} c{connections}: {result}", file=sys.stderr)
    assert setup.sample is not None
    pids["sample"] = [setup.sample.pid]
    for path in ("direct", "agent-relay"):
        url = setup.base(path) + "/api/blob"
        before = {k: e2e.cpu_seconds(v) for k, v in pids.items()}
        samples[path]["download"] = [
            e2e.download_mb_per_s(url, args.download_mib * e2e.MIB, args.repeats)
        ]
        for key, group in pids.items():
            spent = e2e.cpu_seconds(group) - before[key]
            samples[path][f"dl_cpu_{key}"] = [spent / (args.download_mib * args.repeats)]
    return {p: {k: statistics.median(v) for k, v in d.items()} for p, d in samples.items()}


def report(results: dict[str, dict[str, float]], args: argparse.Namespace) -> str:
    direct, relay = results["direct"], results["agent-relay"]
    lines = [
        f"bench/hotpath.py: wrk -t1 {args.seconds} s x {args.rounds} rounds (median), "
        f"{args.download_mib} MiB download x {args.repeats}"
        + (f"; {args.profile} under cProfile" if args.profile else ""),
        "| metric | direct | agent-relay | relay / direct |",
        "|---|---:|---:|---:|",
    ]
    for key, label in (
        ("rate1", "requests/s, 1 connection"),
        ("rate64", "requests/s, 64 connections"),
        ("download", "download (MB/s)"),
    ):
        ratio = e2e.ratio(relay[key], direct[key])
        lines.append(f"| {label} | {direct[key]:.0f} | {relay[key]:.0f} | {ratio} |")
    for connections in (1, 64):
        for key in ("relay", "connector"):
            spent = relay[f"cpu_{key}{connections}"]
            lines.append(
                f"| CPU per request, {connections} connection(s) (µs): {key} | | {spent:.0f} | |"
            )
    for key in ("relay", "connector", "sample"):
        spent = relay[f"dl_cpu_{key}"] * 1e3
        lines.append(f"| download CPU per MiB (ms): {key} | | {spent:.2f} | |")
    return "\n".join(lines)


CORES = ("compiled", "pure")


def start_core(core: str, tmp: Path, tools: dict[str, str]) -> e2e.Setup:
    """A sample server, relay and connector whose relay and connector use ``core``."""
    logs = tmp / core
    logs.mkdir()
    setup = e2e.Setup(e2e.Processes(logs), logs, tools)
    if core == "pure":
        os.environ[_native.PURE_ENV] = "1"  # for the children started now
    try:
        setup.start_sample()
        setup.start_relay()
        setup.connect_host()
    finally:
        os.environ.pop(_native.PURE_ENV, None)
    e2e.check_content(setup.base("agent-relay"))
    return setup


def measure_cores(setups: dict[str, e2e.Setup], args: argparse.Namespace) -> str:
    samples: dict[str, dict[str, list[float]]] = {core: {} for core in setups}
    samples["direct"] = {}
    order = ["direct", *setups]
    for round_ in range(args.rounds):
        for connections in (1, 64):
            for path in order[round_ % 3 :] + order[: round_ % 3]:
                setup = setups[CORES[0]] if path == "direct" else setups[path]
                assert setup.relay is not None
                assert setup.connector is not None
                pids = {"relay": [setup.relay.pid], "connector": [setup.connector.pid]}
                url = setup.base("direct" if path == "direct" else "agent-relay") + e2e.SMALL_PATH
                before = {k: e2e.cpu_seconds(v) for k, v in pids.items()}
                result = e2e.wrk(url, connections, args.seconds)
                figures = samples[path]
                figures.setdefault(f"rate{connections}", []).append(result.rate)
                figures.setdefault(f"p50_{connections}", []).append(result.p50_ms)
                if path != "direct":
                    for key, group in pids.items():
                        spent = e2e.cpu_seconds(group) - before[key]
                        figures.setdefault(f"cpu_{key}{connections}", []).append(
                            spent / result.requests * 1e6
                        )
                print(f"round {round_ + 1} {path} c{connections}: {result}", file=sys.stderr)
    for core, setup in setups.items():
        assert setup.relay is not None
        assert setup.connector is not None
        pids = {"relay": [setup.relay.pid], "connector": [setup.connector.pid]}
        before = {k: e2e.cpu_seconds(v) for k, v in pids.items()}
        size = args.download_mib * e2e.MIB
        samples[core]["download"] = [
            e2e.download_mb_per_s(setup.base("agent-relay") + "/api/blob", size, args.repeats)
        ]
        for key, group in pids.items():
            spent = e2e.cpu_seconds(group) - before[key]
            samples[core][f"dl_cpu_{key}"] = [spent / (args.download_mib * args.repeats) * 1e3]
    med = {p: {k: statistics.median(v) for k, v in d.items()} for p, d in samples.items()}
    direct = med["direct"]
    lines = [
        f"bench/hotpath.py --cores: wrk -t1 {args.seconds} s x {args.rounds} rounds (median), "
        f"interleaved; {args.download_mib} MiB download x {args.repeats}; "
        f"load average {os.getloadavg()[0]:.2f}",
        "| metric | direct | " + " | ".join(setups) + " | compiled / pure |",
        "|---|---:|" + "---:|" * len(setups) + "---:|",
    ]

    def row(label: str, key: str, fmt: str, with_direct: bool) -> None:
        cells = [format(med[core][key], fmt) for core in setups]
        first = format(direct[key], fmt) if with_direct else ""
        ratio = e2e.ratio(med["compiled"][key], med["pure"][key])
        lines.append(f"| {label} | {first} | " + " | ".join(cells) + f" | {ratio} |")

    for connections in (1, 64):
        row(f"requests/s, c{connections}", f"rate{connections}", ".0f", True)
        row(f"p50 (ms), c{connections}", f"p50_{connections}", ".2f", True)
        for key in ("relay", "connector"):
            row(
                f"CPU µs per request, c{connections}: {key}",
                f"cpu_{key}{connections}",
                ".0f",
                False,
            )
    row("download (MB/s)", "download", ".0f", False)
    for key in ("relay", "connector"):
        row(f"download CPU per MiB (ms): {key}", f"dl_cpu_{key}", ".2f", False)
    return "\n".join(lines)


def compare_cores(args: argparse.Namespace, tools: dict[str, str]) -> None:
    if _native.installed() is None:
        sys.exit("bench/hotpath.py --cores: the compiled core is not built (scripts/setup.sh)")
    tmp = Path(tempfile.mkdtemp(prefix="agent-relay-hotpath-"))
    setups: dict[str, e2e.Setup] = {}
    try:
        for core in CORES:
            setups[core] = start_core(core, tmp, tools)
        time.sleep(0.3)
        report_text = measure_cores(setups, args)
        for setup in setups.values():
            setup.procs.stop_all()
        print(report_text)
    except e2e.BenchError as exc:
        sys.exit(f"bench/hotpath.py: {exc} (logs in {tmp})")
    finally:
        for setup in reversed(setups.values()):
            setup.procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3, help="wrk seconds per case [3]")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, median [2]")
    parser.add_argument("--download-mib", type=int, default=100, help="download size [100]")
    parser.add_argument("--repeats", type=int, default=3, help="downloads, median [3]")
    parser.add_argument("--profile", choices=("relay", "connector"), help="run it under cProfile")
    parser.add_argument("--profile-out", type=Path, help="also keep the cProfile stats here")
    parser.add_argument("--top", type=int, default=45, help="profile lines to print [45]")
    parser.add_argument(
        "--cores", action="store_true", help="compiled and pure-Python cores side by side"
    )
    args = parser.parse_args()
    tools = e2e.ensure_tools(install=False)
    if args.cores:
        compare_cores(args, tools)
        return
    tmp = Path(tempfile.mkdtemp(prefix="agent-relay-hotpath-"))
    procs = _Processes(tmp, {"relay": "relay", "connector": "connector-0"}.get(args.profile or ""))
    setup = e2e.Setup(procs, tmp, tools)
    try:
        setup.start_sample()
        setup.start_relay()
        setup.connect_host()
        for path in ("direct", "agent-relay"):
            e2e.check_content(setup.base(path))
        time.sleep(0.3)
        assert setup.relay is not None
        assert setup.connector is not None
        idle_rss = {
            "relay": e2e.rss_kib(setup.relay.pid),
            "connector": e2e.rss_kib(setup.connector.pid),
        }
        results = measure(setup, args)
        procs.stop_all()
        print(report(results, args))
        print(
            f"idle RSS (MiB, after one request each way): relay {e2e.mib(idle_rss['relay']):.1f}, "
            f"connector {e2e.mib(idle_rss['connector']):.1f}"
        )
        if args.profile:
            out = io.StringIO()
            stats = pstats.Stats(str(tmp / "profile.out"), stream=out)
            if args.profile_out:
                stats.dump_stats(args.profile_out)
            stats.sort_stats("tottime").print_stats(args.top)
            stats.sort_stats("cumulative").print_stats(args.top)
            print(out.getvalue())
    except e2e.BenchError as exc:
        sys.exit(f"bench/hotpath.py: {exc} (logs in {tmp})")
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
