"""``kailash-nb tx``: list, show and recover distributed transactions.

The transactions live in the log of the store given by ``--database-url`` (default:
``KAILASH_NB_DATABASE_URL`` or the default SQLite file), in ``--table`` (default
``kailash_nb_transactions``; the nodes' ``storage_config.table_name``)::

    kailash-nb tx list                          # the most recently changed first
    kailash-nb tx list --status in_doubt        # what recovery still has to finish
    kailash-nb tx show 3f7a11c3-...             # one transaction with its steps
    kailash-nb tx recover                       # finish every in-doubt transaction
    kailash-nb tx recover 3f7a11c3-...

Recovery reaches HTTP and node participants from what the log holds; callable
participants exist only in the process that registered them, so a transaction with
one is recovered there (``TransactionManager.recover_pending()`` at its start).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from kailash_nb.cli.arguments import add_database_option, positive_int, print_usage
from kailash_nb.cli.errors import CommandError
from kailash_nb.cli.tables import format_table, format_time

__all__ = ["add_parser", "list_transactions", "recover_transactions", "show_transaction"]

_COLUMNS = ["transaction", "name", "pattern", "status", "tenant", "participants", "updated"]
_STEP_COLUMNS = ["participant", "phase", "state", "attempts", "updated", "error"]


def add_parser(commands_parser: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``tx`` subcommand (``list``, ``show``, ``recover``) to ``kailash-nb``."""
    tx = commands_parser.add_parser(
        "tx",
        help="list, show or recover distributed transactions",
        description="Inspect the distributed transaction log and finish transactions "
        "left in doubt by a process that stopped.",
    )
    tx.set_defaults(handler=print_usage(tx))
    tx_commands = tx.add_subparsers(dest="tx_command", metavar="COMMAND")

    listing = tx_commands.add_parser(
        "list", help="list transactions, the most recently changed first"
    )
    listing.add_argument(
        "--status", metavar="STATUS", help="only this status, or in_doubt for every unfinished"
    )
    listing.add_argument("--tenant", metavar="TENANT", help="only this tenant's")
    listing.add_argument(
        "--limit", type=positive_int, default=50, metavar="N", help="how many (default 50)"
    )
    listing.add_argument("--json", action="store_true", help="print them as JSON")
    _add_log_options(listing)
    listing.set_defaults(handler=list_transactions)

    show = tx_commands.add_parser("show", help="one transaction with its steps")
    show.add_argument("transaction_id", metavar="TRANSACTION_ID")
    show.add_argument("--json", action="store_true", help="print it as JSON")
    _add_log_options(show)
    show.set_defaults(handler=show_transaction)

    recover = tx_commands.add_parser(
        "recover",
        help="finish in-doubt transactions",
        description="Drive TRANSACTION_ID, or every in-doubt transaction nobody is "
        "running, to its end: presumed abort before a commit decision, the commit "
        "resent after one, sagas resumed or compensated. Exit 1 if one is still in doubt.",
    )
    recover.add_argument("transaction_id", metavar="TRANSACTION_ID", nargs="?")
    _add_log_options(recover)
    recover.set_defaults(handler=recover_transactions)


def _add_log_options(parser: argparse.ArgumentParser) -> None:
    add_database_option(parser, "the store holding the transaction log", "--database")
    parser.add_argument(
        "--table", metavar="NAME", help="the transactions table (default kailash_nb_transactions)"
    )


def list_transactions(args: argparse.Namespace) -> int:
    """Print the transactions matching ``--status``/``--tenant``, as a table or JSON."""
    records = _manager(args).list_transactions(
        status=args.status, tenant_id=args.tenant, limit=args.limit
    )
    if args.json:
        print(json.dumps([record.to_dict() for record in records], indent=2))
        return 0
    if not records:
        print("no transactions")
        return 0
    print(format_table([_row(record) for record in records], _COLUMNS))
    return 0


def show_transaction(args: argparse.Namespace) -> int:
    """Print one transaction and its steps."""
    record = _manager(args).get_status(args.transaction_id)
    if args.json:
        print(json.dumps(record.to_dict(), indent=2))
        return 0
    data = record.to_dict()
    for label, value in (
        ("transaction", record.id),
        ("name", record.name),
        ("pattern", record.pattern),
        ("status", record.status + (" (in doubt)" if record.in_doubt else "")),
        ("decision", record.decision or "-"),
        ("tenant", f"{record.tenant_id} / {record.principal}"),
        ("created", format_time(record.created_at)),
        ("updated", format_time(record.updated_at)),
        ("error", record.error or "-"),
    ):
        print(f"{label:12} {value}")
    print()
    steps = [
        {
            "participant": step["participant_id"],
            "phase": step.get("phase", ""),
            "state": step.get("state", ""),
            "attempts": step.get("attempts", ""),
            "updated": format_time(step.get("updated_at")),
            "error": step.get("error") or "",
        }
        for step in data["steps"]
    ]
    print(format_table(steps, _STEP_COLUMNS) if steps else "no steps yet")
    return 0


def recover_transactions(args: argparse.Namespace) -> int:
    """Finish one transaction or every pending one; print how each ended.

    Raises:
        CommandError: a participant cannot be reached from this process (a callable
            one), or a transaction is still in doubt afterwards (exit 1).
    """
    from kailash_nb.transactions import UnknownParticipantError

    manager = _manager(args)
    try:
        if args.transaction_id is not None:
            records = [manager.recover_transaction(args.transaction_id)]
        else:
            records = manager.recover_pending()
    except UnknownParticipantError as exc:
        raise CommandError(f"cannot recover here: {exc}") from None
    if not records:
        print("nothing to recover")
        return 0
    for record in records:
        print(f"{record.id}  {record.name}  {record.status}")
    unfinished = [record.id for record in records if record.in_doubt]
    if unfinished:
        raise CommandError(
            f"{len(unfinished)} transaction(s) still in doubt (a participant unreachable?): "
            + ", ".join(unfinished)
        )
    return 0


def _manager(args: argparse.Namespace) -> Any:
    # The HTTP and node participant kinds: what recovery needs to reach them.
    import kailash_nb.nodes.transaction  # noqa: F401
    from kailash_nb.transactions import TransactionManager

    return TransactionManager(args.database_url, table_name=args.table)


def _row(record: Any) -> dict[str, Any]:
    return {
        "transaction": record.id,
        "name": record.name,
        "pattern": record.pattern,
        "status": record.status + ("*" if record.in_doubt else ""),
        "tenant": record.tenant_id,
        "participants": len(record.participants),
        "updated": format_time(record.updated_at),
    }
