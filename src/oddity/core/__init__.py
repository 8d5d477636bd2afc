"""Core: the Detector contract, registry, thresholds, persistence and errors."""
