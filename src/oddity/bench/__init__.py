"""Benchmark runner: fit and evaluate detectors on datasets, write tables users can trust."""
