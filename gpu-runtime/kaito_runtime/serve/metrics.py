"""Prometheus metrics, on a registry owned by each app (so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Routes are a fixed set, so the `route` label cannot be blown up by scanners.
KNOWN_ROUTES = frozenset(
    {"/", "/health", "/healthz", "/metrics", "/chat", "/v1/models", "/v1/chat/completions", "/v1/completions"}
)
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "kaito_serve_requests", "HTTP requests by route and status code", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "kaito_serve_request_duration_seconds",
            "Time from request start to the last byte of the response",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "kaito_serve_time_to_first_token_seconds",
            "Time from admission to the first generated token",
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter("kaito_serve_prompt_tokens", "Prompt tokens processed", registry=r)
        self.generated_tokens = Counter("kaito_serve_generated_tokens", "Tokens generated", registry=r)
        self.queue_depth = Gauge(
            "kaito_serve_queue_depth", "Requests admitted but not yet in a batch", registry=r
        )
        self.cpu_threads = Gauge(
            "kaito_serve_cpu_threads", "torch threads of a CPU-only server (follows other load)", registry=r
        )
        self.running = Gauge("kaito_serve_running_requests", "Requests in the running batch", registry=r)
        self.batch_size = Gauge("kaito_serve_batch_size", "Rows in the most recent decode step", registry=r)
        self.batch_size_hist = Histogram(
            "kaito_serve_decode_batch_size", "Rows per decode step", buckets=BATCH_BUCKETS, registry=r
        )
        self.rejected = Counter(
            "kaito_serve_rejected_requests", "Requests refused before generation", ["reason"], registry=r
        )
        self.finished = Counter(
            "kaito_serve_finished_requests", "Generations finished, by finish reason", ["reason"], registry=r
        )
        self.model_load_seconds = Gauge(
            "kaito_serve_model_load_seconds", "Seconds it took to load the model and adapters", registry=r
        )
        self.model_loaded = Gauge(
            "kaito_serve_model_loaded", "1 once the model is ready to serve", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
