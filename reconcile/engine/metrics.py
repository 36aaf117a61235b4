"""Prometheus metrics of the controllers, in their own registry.

One `CollectorRegistry` per `Metrics` (not prometheus-client's global one), so several
managers in one process (tests, the SDK runner) never collide on metric names.
"""

from __future__ import annotations

from collections.abc import Callable

import prometheus_client

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST


class Metrics:
    """Queue depth, reconcile count / errors / latency by controller; objects skipped; informer restarts."""

    def __init__(self) -> None:
        self.registry = prometheus_client.CollectorRegistry()
        self.queue_depth = prometheus_client.Gauge(
            "controller_queue_depth", "Keys waiting in the work queue.", ["controller"], registry=self.registry
        )
        self.reconcile_total = prometheus_client.Counter(
            "controller_reconcile_total", "Reconciles run.", ["controller"], registry=self.registry
        )
        self.reconcile_errors_total = prometheus_client.Counter(
            "controller_reconcile_errors_total", "Reconciles that raised.", ["controller"], registry=self.registry
        )
        self.reconcile_duration_seconds = prometheus_client.Histogram(
            "controller_reconcile_duration_seconds",
            "Time spent in one reconcile.",
            ["controller"],
            registry=self.registry,
        )

        self.invalid_objects_total = prometheus_client.Counter(
            "informer_invalid_objects_total",
            "Object versions an informer skipped because they do not decode (each reported once).",
            ["resource"],
            registry=self.registry,
        )
        self.informer_restarts_total = prometheus_client.Counter(
            "informer_restarts_total", "Stopped informers restarted by their component.", ["resource"],
            registry=self.registry,
        )
        self.skipped_objects_total = prometheus_client.Counter(
            "controller_skipped_objects_total",
            "Object versions a controller could not process and skipped until they change.",
            ["controller"],
            registry=self.registry,
        )

    def track_queue(self, controller: str, depth: Callable[[], float]) -> None:
        """Read the depth live at scrape time instead of updating it on every change."""
        self.queue_depth.labels(controller=controller).set_function(depth)

    def observe(self, controller: str, seconds: float, *, error: bool) -> None:
        self.reconcile_total.labels(controller=controller).inc()
        if error:
            self.reconcile_errors_total.labels(controller=controller).inc()
        self.reconcile_duration_seconds.labels(controller=controller).observe(seconds)

    def invalid_object(self, resource: str) -> None:
        self.invalid_objects_total.labels(resource=resource).inc()

    def informer_restarted(self, resource: str) -> None:
        self.informer_restarts_total.labels(resource=resource).inc()

    def skipped_object(self, controller: str) -> None:
        self.skipped_objects_total.labels(controller=controller).inc()

    def render(self) -> bytes:
        """The text exposition format of everything in this registry."""
        return prometheus_client.generate_latest(self.registry)
