"""CLI commands of the conversion layer: ``convert`` and ``calibrate``."""
