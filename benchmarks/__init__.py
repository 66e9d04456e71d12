"""Benchmark harness, targets, reports and the scripts behind edgekit's published figures."""
