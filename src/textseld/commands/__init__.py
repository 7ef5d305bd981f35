"""Subcommand registration for `textseld` (see cli.COMMAND_MODULES).

A subcommand that runs a workflow rule has the rule's name with hyphens
(`extract_features` -> `textseld extract-features`); earlier names stay as
aliases. The same things have the same flags on every command: `--out` for
what the command writes, `-j/--threads` for CPU threads, `--features` for a
packed features file. `--help` shows each option's default.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


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


def add_command(
    sub,
    name: str,
    *,
    help: str,
    description: str | None = None,
    aliases: Sequence[str] = (),
) -> argparse.ArgumentParser:
    """Add subcommand `name` (old names in `aliases` still work) with defaults shown in --help."""
    note = f" (old name{'s' if len(aliases) > 1 else ''}, still accepted: {', '.join(aliases)})" if aliases else ""
    return sub.add_parser(
        name,
        aliases=list(aliases),
        help=help + note,
        description=(description or help[:1].upper() + help[1:] + ".") + note,
        formatter_class=HelpFormatter,
    )


def add_threads(
    p: argparse.ArgumentParser,
    *extra: str,
    dest: str = "threads",
    type=int,
    default: int | None = None,
    help: str = "torch CPU threads (default: torch's, all cores)",
) -> None:
    """-j/--threads N (plus a command's older spellings in `extra`)."""
    p.add_argument("-j", "--threads", *extra, dest=dest, type=type, default=default, metavar="N", help=help)
