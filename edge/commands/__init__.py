"""One module per CLI command; each registers itself on ``edge.cli.app``."""
