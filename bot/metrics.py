"""What `GET /metrics` shows (Prometheus text format). One registry per app, so tests and
several apps in one process never share counters."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages = Counter("tala_messages", "Messages by channel and direction "
                                "(in, out, failed).", ["channel", "direction"],
                                registry=self.registry)
        self.on_loop = Counter("tala_messages_on_loop", "Inbound messages whose Redis work ran "
                               "on the event loop, by channel (the rest waited for a thread).",
                               ["channel"], registry=self.registry)
        self.errors = Counter("tala_errors", "Requests refused or failed, by channel and kind.",
                              ["channel", "kind"], registry=self.registry)
        self.sessions_started = Counter("tala_sessions_started", "Sessions a child started.",
                                        registry=self.registry)
        self.sessions_finished = Counter("tala_sessions_finished", "Sessions that ended, by "
                                         "how (completed, stopped, expired).", ["status"],
                                         registry=self.registry)
        self.latency = Histogram("tala_handle_seconds", "Time to handle one inbound message.",
                                 ["channel"], registry=self.registry,
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))

    def render(self) -> bytes:
        return generate_latest(self.registry)
