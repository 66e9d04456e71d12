"""Scripts behind the project's published figures; run from a checkout as ``python -m benchmarks.published.NAME``.

Not part of the wheel.
"""
