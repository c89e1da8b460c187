"""Prometheus metrics of one relay process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class RelayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.tunnels = Gauge(
            "agent_relay_tunnels",
            "Hosts connected over a live control channel (with replicas: held by this one)",
            registry=self.registry,
        )
        self.streams = Gauge(
            "agent_relay_streams_in_flight",
            "Proxied requests in progress",
            registry=self.registry,
        )
        self.buffered = Gauge(
            "agent_relay_buffered_bytes",
            "Bytes hosts may have in the relay's receive buffers (buffered or granted)",
            registry=self.registry,
        )
        self.held = Gauge(
            "agent_relay_held_bytes",
            "Bytes really in the relay's buffers for clients, plus reservations for "
            "streams not answered yet (what admission counts)",
            registry=self.registry,
        )
        self.admission_waiting = Gauge(
            "agent_relay_admission_waiting",
            "Proxied requests waiting for their user's buffers to have room",
            registry=self.registry,
        )
        self.admission_refused = Counter(
            "agent_relay_admission_refused",
            "Proxied requests answered 503 because their user's buffers had no room in time",
            registry=self.registry,
        )
        self.requests = Counter(
            "agent_relay_proxied_requests",
            "Proxied requests by response status",
            ["status"],
            registry=self.registry,
        )
        self.bytes = Counter(
            "agent_relay_proxied_bytes",
            "Body bytes proxied, by direction (up: to the host)",
            ["direction"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "agent_relay_response_seconds",
            "Time from request head to the host's response head",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        # Several replicas (replicas.py): requests carried over the replica link.
        self.forwarded = Counter(
            "agent_relay_forwarded_requests",
            "Requests carried over the replica link, by direction (out: to the replica "
            "holding the host; in: from another replica)",
            ["direction"],
            registry=self.registry,
        )
        self.forward_latency = Histogram(
            "agent_relay_forward_seconds",
            "Whole exchange of a request forwarded to another replica, seen by the sender",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.forwarded_out = self.forwarded.labels("out")
        self.forwarded_in = self.forwarded.labels("in")
        self.connects = Counter(
            "agent_relay_host_connects",
            "Host connects: upgraded to a control channel, or refused while busy (503)",
            ["result"],
            registry=self.registry,
        )
        self.connects_upgraded = self.connects.labels("upgraded")
        self.connects_busy = self.connects.labels("busy")

        # Children of the labelled metrics the proxy touches on every request, looked up once.
        self.bytes_up = self.bytes.labels("up")
        self.bytes_down = self.bytes.labels("down")
        self._by_status: dict[int, Counter] = {}

    def count_request(self, status: int) -> None:
        counter = self._by_status.get(status)
        if counter is None:
            counter = self._by_status[status] = self.requests.labels(str(status))
        counter.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
