"""Where a benchmark runs: one class per kind of target (push, run, pull)."""
