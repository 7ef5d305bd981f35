"""Subcommand registration for `textseld` (see cli.COMMAND_MODULES)."""
