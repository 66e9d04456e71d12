"""CLI command of the benchmark layer: ``bench``."""
