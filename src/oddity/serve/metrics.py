"""Prometheus metrics of the service, in a registry of its own (one per app).

- `oddity_requests_total{route, status}`: answered requests, refusals included;
- `oddity_request_seconds{route}`: time to answer (histogram);
- `oddity_inference_seconds{model}`: model time per image (histogram);
- `oddity_score_ratio{model}`: score divided by the threshold in force (histogram; above 1
  is anomalous), so models with different score scales share buckets;
- `oddity_labels_total{model, label}`: images labelled anomalous / normal;
- `oddity_in_progress`: requests being scored or waiting for a worker.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RATIO_BUCKETS = (0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 4.0)


class ServiceMetrics:
    """The service's counters and histograms (see module docstring)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("oddity_requests", "Answered requests", ["route", "status"],
                                registry=self.registry)
        self.request_seconds = Histogram("oddity_request_seconds", "Seconds to answer a request",
                                         ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.inference_seconds = Histogram("oddity_inference_seconds", "Model seconds per image",
                                           ["model"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.score_ratio = Histogram("oddity_score_ratio", "Image score divided by the threshold in force",
                                     ["model"], buckets=RATIO_BUCKETS, registry=self.registry)
        self.labels = Counter("oddity_labels", "Images labelled", ["model", "label"], registry=self.registry)
        self.in_progress = Gauge("oddity_in_progress", "Requests being scored or queued",
                                 registry=self.registry)

    def observe_image(self, model: str, seconds: float, score: float, threshold: float, anomalous: bool) -> None:
        """Record one scored image.

        Parameters
        ----------
        model : str
            Model name (metric label).
        seconds : float
            Model time spent on the image.
        score : float
            Image anomaly score.
        threshold : float
            Threshold in force; the score ratio is recorded only when it is positive.
        anomalous : bool
            The label given to the image.
        """
        self.inference_seconds.labels(model).observe(seconds)
        if threshold > 0:
            self.score_ratio.labels(model).observe(score / threshold)
        self.labels.labels(model, "anomalous" if anomalous else "normal").inc()

    def exposition(self) -> bytes:
        """The metrics in Prometheus text format."""
        return generate_latest(self.registry)
