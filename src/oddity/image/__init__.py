"""Image anomaly detection: readers, geometry, the ImageDetector base and its methods."""
