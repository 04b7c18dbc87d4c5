"""mlkit workloads: the jobs the platform runs (ingest, train, promote, score, serve, monitor)."""

__version__ = "0.1.0"
