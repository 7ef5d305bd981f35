"""Command-line interface: `textseld <step> ...`, one subcommand per pipeline step.

Each module in `textseld.commands` registers its subcommands; every handler
calls the same library function as the matching workflow rule adapter. A
subcommand that runs a rule has the rule's name with hyphens
(rule `extract_features`: `textseld extract-features`); the flags follow
`textseld.commands` (`--out`, `-j/--threads`, `--features`), and `--help`
shows the defaults.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from textseld import __version__
from textseld.logsetup import FORMAT as LOG_FORMAT

# Modules under textseld.commands, each defining register(subparsers).
# Their order is the order of the subcommands in `textseld --help` (the pipeline's).
COMMAND_MODULES = (
    "synth",
    "dataset",
    "weights",
    "features",
    "texts",
    "train",
    "evaluate",
    "results",
    "diagnostics",
    "plan",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="textseld",
        description="Stereo SELD with frozen pre-trained text encoders: pipeline steps. Each step "
        "that is a workflow rule has the rule's name with hyphens; `textseld COMMAND --help` shows "
        "its options and their defaults.",
    )
    parser.add_argument("--version", action="version", version=f"textseld {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"textseld.commands.{name}").register(sub)
    return parser


def describe_error(exc: BaseException) -> str:
    """One line for the user. The operating system's errors of making an output path (a folder
    where a file is, or a file inside one) say which path and what was expected."""
    if isinstance(exc, FileExistsError | NotADirectoryError) and exc.filename:
        path = Path(exc.filename)
        file = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        if file == path:
            return f"{path}: is a file; expected a folder there (or nothing, for the folder to be made)"
        if file is not None:
            return f"{path}: {file} is a file; expected a folder there"
    return str(exc)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format=LOG_FORMAT,
    )
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # user-facing: one clear line, traceback only with -v
        if args.verbose:
            raise
        print(f"textseld {args.command}: error: {describe_error(exc)}", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
