"""The relay's per-request hot path alone: the sample server reached directly and through
``agent-relay server`` + ``agent-relay host`` (the same processes as ``bench/e2e.py``,
without ssh and the memory runs), so a change can be measured in seconds.

Prints requests/s with 1 and 64 connections, CPU time per request of the relay and the
connector, and the MB/s of a streamed download, each as a ratio to the direct path
measured in the same run. With ``--profile relay`` (or ``connector``, ``signed``) that
process runs under cProfile (``bench/profiled.py``) and its top functions are printed
afterwards (figures then include the profiler's own cost).

``--signed`` adds a connector that checks signatures, loaded by a bare signing client
(``signed_load`` below: signs each request with the pairing's key, keeps its connections
alive like wrk and reads each answer without checking it, so that the load, not the
client, sets the pace): its CPU per request against the unsigned connector's.
``--baseline SRC`` runs a second relay and connector(s) from another source tree (a
``src`` directory, e.g. ``git archive <rev> src | tar -x -C /tmp/base``) on
``PYTHONPATH``, measured in the same rounds, interleaved: before and after in one run.

    .venv/bin/python bench/hotpath.py [--seconds 3] [--rounds 2] [--profile relay]
        [--signed] [--baseline /tmp/base/src]

``--cores`` runs two relay + connector pairs side by side instead, one on the compiled
core and one on the pure-Python core (``AGENT_RELAY_PURE_PYTHON=1``), measured in
interleaved rounds under the same load, with their CPU per request at c1 and c64.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent_relay import _native  # noqa: E402
from bench import e2e  # noqa: E402

PROFILED = ROOT / "bench" / "profiled.py"


class _Processes(e2e.Processes):
    """Starts the process named ``profile`` (relay / connector-0) under cProfile; with
    ``pythonpath``, every process it starts imports agent_relay from there."""

    def __init__(self, logs: Path, profile: str | None, pythonpath: Path | None = None) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        super().__init__(logs)
        self.profile = profile
        self.pythonpath = pythonpath

    def start(self, name: str, argv: list[str], *, pipe: bool = False) -> subprocess.Popen[bytes]:
        if self.profile is not None and name == self.profile:
            argv = [sys.executable, str(PROFILED), str(self.logs / "profile.out"), *argv[1:]]
        if self.pythonpath is None:
            return super().start(name, argv, pipe=pipe)
        saved = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = str(self.pythonpath)
        try:
            return super().start(name, argv, pipe=pipe)
        finally:
            if saved is None:
                del os.environ["PYTHONPATH"]
            else:
                os.environ["PYTHONPATH"] = saved


@dataclass
class _Tree:
    """One relay and its connector(s), from this tree or a baseline one."""

    label: str
    setup: e2e.Setup

    def paths(self, signed: bool) -> list[tuple[str, str]]:
        """(column, e2e path) pairs measured for this tree."""
        out = [(self.label, "agent-relay")]
        if signed:
            out.append((f"{self.label} signed", e2e.SIGNED))
        return out

    def pids(self, path: str) -> dict[str, list[int]]:
        setup = self.setup
        assert setup.relay is not None
        connector = setup.signed_connector if path == e2e.SIGNED else setup.connector
        assert connector is not None
        return {"relay": [setup.relay.pid], "connector": [connector.pid]}


def _load(setup: e2e.Setup, path: str, connections: int, seconds: int) -> e2e.WrkResult:
    if path == e2e.SIGNED:
        return signed_load(setup, connections, seconds)
    return e2e.wrk(setup.base(path) + e2e.SMALL_PATH, connections, seconds)


def signed_load(setup: e2e.Setup, connections: int, seconds: int) -> e2e.WrkResult:
    """``connections`` keep-alive connections sending signed GETs for ``seconds``, from
    a load process (``--signed-load``), as wrk would report them."""
    assert setup.signed_store is not None
    done = subprocess.run(
        [sys.executable, __file__, "--signed-load", str(connections), "--seconds", str(seconds),
         "--store", str(setup.signed_store), "--relay-url", f"http://127.0.0.1:{setup.relay_port}"],
        capture_output=True, text=True, timeout=seconds + 60,
    )  # fmt: skip
    if done.returncode != 0:
        raise e2e.BenchError(f"the signed load process failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout)
    return e2e.WrkResult(figures["rate"], figures["p50_ms"], figures["p99_ms"], figures["requests"])


def run_signed_load(store_dir: Path, relay_url: str, connections: int, seconds: int) -> None:
    """In the load process: signed GETs of SMALL_PATH over raw keep-alive connections
    (the answers are read, not verified: the client's own cost is not what is measured);
    prints requests, rate and latency percentiles as JSON."""
    import asyncio
    from urllib.parse import urlsplit

    from agent_relay.client.keystore import KeyStore
    from agent_relay.client.signing import sign_request

    pairing = KeyStore(store_dir).find(relay_url, None)
    url = urlsplit(relay_url)
    assert url.hostname is not None
    assert url.port is not None
    target = f"/v1/relay/h/{pairing.host_id}/s/{pairing.relay_session_id}{e2e.SMALL_PATH}"
    plain = {"accept-encoding": "identity"}
    latencies: list[float] = []

    def request() -> bytes:
        signed = sign_request(
            pairing.client_key,
            pairing.signing_session_id,
            "GET",
            e2e.SMALL_PATH,
            b"",
            int(time.time()),
            headers=plain if pairing.signs_headers else None,
        )
        lines = [f"GET {target} HTTP/1.1", f"host: {url.netloc}"]
        lines += [f"{k}: {v}" for k, v in {**plain, **signed.headers()}.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def worker(deadline: float) -> None:
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        try:
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                writer.write(request())
                head = await reader.readuntil(b"\r\n\r\n")
                status = head.split(b" ", 2)[1]
                if status != b"200":
                    raise e2e.BenchError(f"signed GET: {head.decode('latin-1')}")
                length = None
                for line in head.lower().split(b"\r\n"):
                    if line.startswith(b"content-length:"):
                        length = int(line.partition(b":")[2])
                if length is None:
                    raise e2e.BenchError(f"signed GET: no content-length:\n{head!r}")
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - sent)
        finally:
            writer.close()

    async def main() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(worker(started + seconds) for _ in range(connections)))
        return time.perf_counter() - started

    took = asyncio.run(main())
    latencies.sort()
    print(
        json.dumps(
            {
                "requests": len(latencies),
                "rate": len(latencies) / took,
                "p50_ms": latencies[len(latencies) // 2] * 1e3,
                "p99_ms": latencies[min(len(latencies) - 1, len(latencies) * 99 // 100)] * 1e3,
            }
        )
    )


def measure(
    trees: list[_Tree], direct: e2e.Setup, args: argparse.Namespace
) -> dict[str, dict[str, float]]:
    cases: list[tuple[str, e2e.Setup, str, _Tree | None]] = [("direct", direct, "direct", None)]
    for one in trees:
        cases += [(column, one.setup, path, one) for column, path in one.paths(args.signed)]
    samples: dict[str, dict[str, list[float]]] = {column: {} for column, *_ in cases}
    for round_ in range(args.rounds):
        for connections in (1, 64):
            shift = round_ % len(cases)
            for column, setup, path, tree in cases[shift:] + cases[:shift]:
                pids = tree.pids(path) if tree is not None else {}
                before = {k: e2e.cpu_seconds(v) for k, v in pids.items()}
                result = _load(setup, path, connections, args.seconds)
                figures = {f"rate{connections}": result.rate, f"p50_{connections}": result.p50_ms}
                for key, group in pids.items():
                    spent = e2e.cpu_seconds(group) - before[key]
                    figures[f"cpu_{key}{connections}"] = spent / max(1, result.requests) * 1e6
                for key, value in figures.items():
                    samples[column].setdefault(key, []).append(value)
                print(f"round {round_ + 1} {column} c{connections}: {result}", file=sys.stderr)
        print(f"load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
    if args.download_mib:
        assert direct.sample is not None
        for column, setup, path, tree in cases:
            if path == e2e.SIGNED:
                continue
            pids = tree.pids(path) if tree is not None else {}
            pids["sample"] = [direct.sample.pid]
            url = setup.base(path) + "/api/blob"
            before = {k: e2e.cpu_seconds(v) for k, v in pids.items()}
            samples[column]["download"] = [
                e2e.download_mb_per_s(url, args.download_mib * e2e.MIB, args.repeats)
            ]
            for key, group in pids.items():
                spent = e2e.cpu_seconds(group) - before[key]
                samples[column][f"dl_cpu_{key}"] = [spent / (args.download_mib * args.repeats)]
    return {p: {k: statistics.median(v) for k, v in d.items()} for p, d in samples.items()}


def report(results: dict[str, dict[str, float]], args: argparse.Namespace) -> str:
    columns = list(results)
    direct = results["direct"]
    lines = [
        f"bench/hotpath.py: wrk -t1 {args.seconds} s x {args.rounds} rounds (median)"
        + (f", {args.download_mib} MiB download x {args.repeats}" if args.download_mib else "")
        + (f"; {args.profile} under cProfile" if args.profile else "")
        + f"; load average {os.getloadavg()[0]:.1f}",
        "| metric | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]

    def row(label: str, key: str, fmt: str, ratio: bool = False) -> None:
        cells = []
        for column in columns:
            value = results[column].get(key)
            if value is None:
                cells.append("")
            elif ratio and column != "direct" and direct.get(key):
                cells.append(f"{value:{fmt}} ({e2e.ratio(value, direct[key])}×)")
            else:
                cells.append(f"{value:{fmt}}")
        if any(cells):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")

    for connections in (1, 64):
        row(f"requests/s, {connections} connection(s)", f"rate{connections}", ".0f", True)
        row(f"p50 (ms), {connections} connection(s)", f"p50_{connections}", ".2f")
    row("download (MB/s)", "download", ".0f", True)
    for connections in (1, 64):
        for key in ("relay", "connector"):
            row(f"CPU per request, c{connections} (µs): {key}", f"cpu_{key}{connections}", ".0f")
    for key in ("relay", "connector", "sample"):
        values = {c: results[c].get(f"dl_cpu_{key}") for c in columns}
        cells = [f"{v * 1e3:.2f}" if v is not None else "" for v in values.values()]
        if any(cells):
            lines.append(f"| download CPU per MiB (ms): {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _start_tree(
    label: str, procs: _Processes, tmp: Path, tools: dict[str, str], sample: e2e.Setup, signed: bool
) -> _Tree:
    setup = e2e.Setup(procs, tmp, tools)
    setup.sample_port, setup.sample = sample.sample_port, sample.sample
    setup.start_relay()
    setup.connect_host()
    if signed:
        setup.connect_signed()
    e2e.check_content(setup.base("agent-relay"))
    return _Tree(label, setup)


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
    parser.add_argument(
        "--download-mib", type=int, default=100, help="download size, 0 for none [100]"
    )
    parser.add_argument("--repeats", type=int, default=3, help="downloads, median [3]")
    parser.add_argument(
        "--profile", choices=("relay", "connector", "signed"), help="run it under cProfile"
    )
    parser.add_argument(
        "--profile-clock",
        choices=("wall", "cpu"),
        default="wall",
        help="what the profile counts: wall time, or the process's CPU time [wall]",
    )
    parser.add_argument("--signed", action="store_true", help="also measure signed mode")
    parser.add_argument(
        "--baseline", type=Path, help="a src dir to measure too, interleaved (before/after)"
    )
    parser.add_argument("--profile-out", type=Path, help="also keep the cProfile stats here")
    parser.add_argument("--top", type=int, default=45, help="profile lines to print [45]")
    parser.add_argument("--signed-load", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--relay-url", help=argparse.SUPPRESS)
    parser.add_argument(
        "--cores", action="store_true", help="compiled and pure-Python cores side by side"
    )
    args = parser.parse_args()
    if args.signed_load is not None:
        run_signed_load(args.store, args.relay_url, args.signed_load, args.seconds)
        return
    tools = e2e.ensure_tools(install=False)
    if args.profile == "signed":
        args.signed = True
    os.environ["AGENT_RELAY_PROFILE_CLOCK"] = args.profile_clock
    if args.cores:
        compare_cores(args, tools)
        return
    tmp = Path(tempfile.mkdtemp(prefix="agent-relay-hotpath-"))
    profiled = {"relay": "relay", "connector": "connector-0", "signed": "connector-signed"}
    procs = _Processes(tmp, profiled.get(args.profile or ""))
    base_procs = _Processes(tmp / "baseline", None, args.baseline) if args.baseline else None
    setup = e2e.Setup(procs, tmp, tools)
    try:
        setup.start_sample()
        e2e.check_content(setup.base("direct"))
        trees = []
        if base_procs is not None:
            trees.append(_start_tree("baseline", base_procs, tmp / "baseline", tools, setup,
                                     args.signed))  # fmt: skip
        trees.append(_start_tree("agent-relay", procs, tmp, tools, setup, args.signed))
        time.sleep(0.3)
        idle_rss = {}
        for tree in trees:
            for key, pids in tree.pids("agent-relay").items():
                idle_rss[f"{tree.label} {key}"] = e2e.rss_kib(pids[0])
        results = measure(trees, setup, args)
        if base_procs is not None:
            base_procs.stop_all()
        procs.stop_all()
        print(report(results, args))
        print(
            "idle RSS (MiB, after one request each way): "
            + ", ".join(f"{k} {e2e.mib(v):.1f}" for k, v in idle_rss.items())
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
        if base_procs is not None:
            base_procs.stop_all()
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
