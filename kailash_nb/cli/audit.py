"""``kailash-nb audit``: verify and list the access-control audit trail.

The trail lives in the store given by ``--database-url`` (default:
``KAILASH_NB_DATABASE_URL`` or the default SQLite file). Signatures of chain ends and
checkpoints are checked with the key in ``KAILASH_NB_AUDIT_KEY`` (at least 32 bytes,
the key the writers were given); without it, edits and deletions are still found but
a cut-off tail cannot be proven absent, and the output says so::

    kailash-nb audit verify                      # every tenant
    kailash-nb audit verify --tenant acme
    kailash-nb audit show --tenant acme --decision deny --limit 20
    kailash-nb audit show --subject alice --json
    kailash-nb audit checkpoint >> /backup/audit-checkpoints.jsonl
    kailash-nb audit verify --checkpoints /backup/audit-checkpoints.jsonl

``checkpoint`` prints where each tenant's chain ends now, one JSON line per tenant,
signed with the key: kept outside the database, such lines let ``verify --checkpoints``
catch a chain that was later cut short, rolled back or wiped. ``verify`` exits 0 with a
one-line summary, or 1 with one line naming the tenant and the sequence number of the
first bad record and what is wrong with it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from kailash_nb.cli.arguments import add_database_option, positive_int, print_usage
from kailash_nb.cli.errors import CommandError
from kailash_nb.cli.tables import format_table, format_time

__all__ = ["add_parser", "print_checkpoints", "show_records", "verify_trail"]

_COLUMNS = ["tenant", "seq", "time", "subject", "action", "resource", "decision", "rules", "cached"]


def add_parser(commands_parser: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``audit`` subcommand (``verify``, ``show``) to ``kailash-nb``."""
    from kailash_nb.store.audit_trail import AUDIT_DECISIONS, AUDIT_KEY_ENV

    audit = commands_parser.add_parser(
        "audit",
        help="verify or list the access-control audit trail",
        description="Verify the hash chains of the audit trail or list its records. "
        f"Signatures are checked with the key in ${AUDIT_KEY_ENV}.",
    )
    audit.set_defaults(handler=print_usage(audit))
    audit_commands = audit.add_subparsers(dest="audit_command", metavar="COMMAND")

    verify = audit_commands.add_parser(
        "verify",
        help="check the audit trail for edits, deletions and truncation",
        description="Check every tenant's chain (or TENANT's): exit 0 if intact, else 1 "
        "with the first bad record's tenant and sequence number. Chain ends and "
        f"checkpoints are authenticated with ${AUDIT_KEY_ENV} when it is set.",
    )
    verify.add_argument("--tenant", metavar="TENANT", help="only this tenant's chain")
    verify.add_argument(
        "--checkpoints",
        metavar="FILE",
        help="checkpoints kept outside the database (lines printed by `audit checkpoint`); "
        "every chain must still reach them",
    )
    add_database_option(verify, "the store holding the trail", "--database")
    verify.set_defaults(handler=verify_trail)

    checkpoint = audit_commands.add_parser(
        "checkpoint",
        help="print where each chain ends now, to keep outside the database",
        description="Print one JSON line per tenant (or for TENANT) naming the end of its "
        f"chain, signed with ${AUDIT_KEY_ENV} when set. Keep the lines elsewhere and pass "
        "them to `audit verify --checkpoints FILE`.",
    )
    checkpoint.add_argument("--tenant", metavar="TENANT", help="only this tenant")
    add_database_option(checkpoint, "the store holding the trail", "--database")
    checkpoint.set_defaults(handler=print_checkpoints)

    show = audit_commands.add_parser(
        "show",
        help="list audit records, most recent first",
        description="List audit records matching every given filter, most recent first.",
    )
    show.add_argument("--tenant", metavar="TENANT", help="only this tenant's records")
    show.add_argument("--subject", metavar="SUBJECT", help="only this subject's records")
    show.add_argument("--action", metavar="ACTION", help="only this action (execute, ...)")
    show.add_argument("--decision", choices=AUDIT_DECISIONS, help="only these decisions")
    show.add_argument(
        "--limit", type=positive_int, default=50, metavar="N", help="how many (default 50)"
    )
    show.add_argument("--json", action="store_true", help="print the records as JSON")
    add_database_option(show, "the store holding the trail", "--database")
    show.set_defaults(handler=show_records)


def verify_trail(args: argparse.Namespace) -> int:
    """Verify the trail (one tenant's chain with ``--tenant``); print one line.

    Raises:
        CommandError: the trail is broken (naming the first bad record), the key in
            ``KAILASH_NB_AUDIT_KEY`` is refused, or the store cannot be read.
    """
    kept = _read_checkpoints(args.checkpoints) if args.checkpoints else []
    trail = _trail(args)
    result = trail.verify(args.tenant, checkpoints=kept)
    if not result.ok:
        raise CommandError(result.message)
    print(result.message)
    return 0


def print_checkpoints(args: argparse.Namespace) -> int:
    """Print the end of each tenant's chain (``--tenant``'s only) as a JSON line."""
    trail = _trail(args)
    tenants = [args.tenant] if args.tenant is not None else trail.tenants()
    for tenant in tenants:
        print(trail.checkpoint(tenant).to_json())
    return 0


def _read_checkpoints(path: str) -> list[Any]:
    from kailash_nb.store.audit_trail import Checkpoint

    if path == "-":
        lines = sys.stdin.read().splitlines()
    else:
        try:
            with open(path, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except FileNotFoundError:
            raise CommandError(f"no checkpoints file {path!r}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read checkpoints file {path!r}: {exc}") from None
    kept = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            kept.append(Checkpoint.from_json(line))
        except ValueError as exc:
            raise CommandError(f"{path} line {number}: {exc}") from None
    return kept


def show_records(args: argparse.Namespace) -> int:
    """Print the records matching the filters of ``args``, as a table or JSON."""
    entries = _trail(args).records(
        tenant_id=args.tenant,
        subject=args.subject,
        action=args.action,
        decision=args.decision,
        limit=args.limit,
    )
    if args.json:
        print(json.dumps([entry.as_dict() for entry in entries], indent=2, ensure_ascii=False))
        return 0
    if not entries:
        print("no audit records")
        return 0
    rows: list[dict[str, Any]] = [
        {
            "tenant": entry.record.tenant_id,
            "seq": entry.seq,
            "time": format_time(entry.record.at),
            "subject": entry.record.subject,
            "action": entry.record.action,
            "resource": entry.record.resource,
            "decision": entry.record.decision,
            "rules": ",".join(entry.record.rule_ids),
            "cached": "yes" if entry.record.cached else "",
        }
        for entry in entries
    ]
    print(format_table(rows, _COLUMNS))
    return 0


def _trail(args: argparse.Namespace) -> Any:
    from kailash_nb.store.audit_trail import AUDIT_KEY_ENV, AuditTrail

    key_text = os.environ.get(AUDIT_KEY_ENV)
    key = key_text.encode("utf-8") if key_text else None
    try:
        return AuditTrail(args.database_url, checkpoint_key=key)
    except ValueError as exc:
        raise CommandError(f"{AUDIT_KEY_ENV}: {exc}") from None
