"""Metrics and logs: every Prometheus series and the JSON log format."""
