"""Argument helpers the ``kailash-nb`` subcommands share."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

__all__ = ["add_database_option", "positive_int", "print_usage"]


def positive_int(text: str) -> int:
    """An argparse ``type`` for a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_database_option(parser: argparse.ArgumentParser, holds: str, *aliases: str) -> None:
    """Add ``--database-url URL`` (and ``aliases``), naming the store as ``holds``."""
    parser.add_argument(
        "--database-url",
        *aliases,
        dest="database_url",
        metavar="URL",
        help=f"{holds} (default: $KAILASH_NB_DATABASE_URL or a file in the user data dir)",
    )


def print_usage(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """A handler for a command group run without a subcommand: its help, exit 2."""

    def handler(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return handler
