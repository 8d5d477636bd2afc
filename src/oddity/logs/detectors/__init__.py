"""Log detectors: one module per method, each registered by name."""
