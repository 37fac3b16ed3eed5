"""``python -m xai_fer`` runs the CLI."""

from .cli import main

main()
