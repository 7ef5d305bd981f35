"""Subcommands of this pipeline stage (being written)."""


def register(sub) -> None:
    """Add this stage's subcommands to the `textseld` parser."""
