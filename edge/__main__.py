"""``python -m edge`` runs the edgekit CLI."""

from edge.cli import main

main()
