"""Time-series anomaly detection: readers, windows and detectors."""
