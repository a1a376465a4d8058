"""Benchmarks and quality measurements, run as ``python -m benchmarks.<name>`` from the repo root."""
