"""Logs and categorical events: readers, template mining, grouping, sequence detectors."""
