"""Image detectors, one method per module; each registers itself by name on import."""
