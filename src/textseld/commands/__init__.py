"""Subcommand registration for `textseld` (see cli.COMMAND_MODULES).

A subcommand that runs a workflow rule has the rule's name with hyphens
(`extract_features` -> `textseld extract-features`). The same things have the
same flags on every command: `--out` for what the command writes, `-j/--threads`
for CPU threads, `--features` for a packed features file. Choices come from the
library (one owner each), and `--help` shows each option's default.
"""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" after an option's help, except when there is no default to show
    (required options, None, a store_true flag's False, an empty list)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        default = action.default
        if (
            action.required
            or default is None
            or default is False
            or (isinstance(default, list | tuple) and not default)
        ):
            return action.help
        return super()._get_help_string(action)


def add_command(sub, name: str, *, help: str, description: str | None = None) -> argparse.ArgumentParser:
    """Add subcommand `name` with defaults shown in --help."""
    return sub.add_parser(
        name,
        help=help,
        description=description or help[:1].upper() + help[1:] + ".",
        formatter_class=HelpFormatter,
    )


def given(args: argparse.Namespace, *names: str) -> dict:
    """The options among `names` that were given on the command line (not None): the rest are
    left to the library function's defaults, their one owner."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def add_threads(
    p: argparse.ArgumentParser,
    *,
    dest: str = "threads",
    type=int,
    default: int | None = None,
    help: str = "torch CPU threads (default: torch's, all cores)",
) -> None:
    """-j/--threads N."""
    p.add_argument("-j", "--threads", dest=dest, type=type, default=default, metavar="N", help=help)
