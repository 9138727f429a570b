"""``python -m anonaudit`` runs the CLI."""

from anonaudit.cli import main

main()
