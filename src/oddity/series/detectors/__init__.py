"""Time-series detectors, one method per file; each registers itself by name."""
