"""``kailash-nb users``: add, list and remove the gateway's password users, and enroll
them in TOTP.

Users live in the store given by ``--database-url`` (default: ``KAILASH_NB_DATABASE_URL``
or the default SQLite file), the same store a gateway's ``POST /auth/token`` reads
through :class:`kailash_nb.security.passwords.UserStore`. A password is never taken as
an argument: it is prompted for twice with :func:`getpass.getpass`, or read as the
first line of standard input with ``--password-stdin``::

    kailash-nb users add alice --tenant acme --role analyst
    printf '%s\\n' "$PASSWORD" | kailash-nb users add bob --tenant acme --password-stdin
    kailash-nb users list --tenant acme
    kailash-nb users remove alice --tenant acme
    kailash-nb users add carol --tenant acme --totp      # password, then TOTP enrollment
    kailash-nb users totp alice --tenant acme            # (re-)enroll an existing user
    kailash-nb users totp alice --tenant acme --disable

An enrollment prints the ``otpauth://`` URI for an authenticator app and ten one-time
backup codes, once: the store keeps the TOTP secret (unencrypted) and only hashes of
the backup codes. Re-enrolling replaces both.

Errors (a taken username, a password outside the store's policy, an unknown user) are
one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from kailash_nb.cli.arguments import add_database_option, print_usage
from kailash_nb.cli.tables import format_table, format_time
from kailash_nb.sdk_exceptions import KailashException

__all__ = [
    "UserCommandError",
    "add_parser",
    "add_user",
    "enroll_totp",
    "list_users",
    "remove_user",
]


class UserCommandError(KailashException):
    """A ``kailash-nb users`` command cannot do what was asked."""


def add_parser(commands_parser: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``users`` subcommand (``add``, ``list``, ``remove``) to ``kailash-nb``."""
    users = commands_parser.add_parser(
        "users",
        help="manage the gateway's password users",
        description="Add, list and remove the users that get tokens from a gateway's "
        "POST /auth/token.",
    )
    users.set_defaults(handler=print_usage(users))
    users_commands = users.add_subparsers(dest="users_command", metavar="COMMAND")

    add = users_commands.add_parser(
        "add",
        help="create a user",
        description="Create USERNAME in TENANT. The password is prompted for twice, or read "
        "from the first line of stdin with --password-stdin; it is never an argument.",
    )
    add.add_argument("username", metavar="USERNAME")
    add.add_argument("--tenant", required=True, metavar="TENANT", help="the user's tenant")
    add.add_argument(
        "--role",
        action="append",
        default=[],
        dest="roles",
        metavar="ROLE",
        help="a role carried by the user's tokens (repeatable)",
    )
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin instead of prompting",
    )
    add.add_argument(
        "--totp",
        action="store_true",
        help="also enroll the user in TOTP and print the enrollment once",
    )
    _issuer_option(add)
    add_database_option(add, "the user store")
    add.set_defaults(handler=add_user)

    listing = users_commands.add_parser(
        "list", help="list users", description="List users, by tenant and username."
    )
    listing.add_argument("--tenant", metavar="TENANT", help="only this tenant's users")
    add_database_option(listing, "the user store")
    listing.set_defaults(handler=list_users)

    remove = users_commands.add_parser(
        "remove", help="delete a user", description="Delete USERNAME of TENANT."
    )
    remove.add_argument("username", metavar="USERNAME")
    remove.add_argument("--tenant", required=True, metavar="TENANT", help="the user's tenant")
    add_database_option(remove, "the user store")
    remove.set_defaults(handler=remove_user)

    totp = users_commands.add_parser(
        "totp",
        help="enroll a user in TOTP (or --disable it)",
        description="Give USERNAME of TENANT a new TOTP secret and new backup codes, "
        "replacing any earlier ones, and print them once; its sign-ins then need a code. "
        "With --disable, drop the enrollment instead.",
    )
    totp.add_argument("username", metavar="USERNAME")
    totp.add_argument("--tenant", required=True, metavar="TENANT", help="the user's tenant")
    totp.add_argument(
        "--disable", action="store_true", help="remove the TOTP enrollment and backup codes"
    )
    _issuer_option(totp)
    add_database_option(totp, "the user store")
    totp.set_defaults(handler=enroll_totp)


def add_user(args: argparse.Namespace) -> int:
    """Create a user from ``args`` with a password read from stdin or prompted for
    (then, with ``--totp``, enroll it and print the enrollment once)."""
    password = _read_password(args.password_stdin)
    store = _store(args)
    user = store.add_user(args.username, password, tenant_id=args.tenant, roles=list(args.roles))
    roles = ", ".join(user.roles) or "no roles"
    print(f"added user {user.username!r} to tenant {user.tenant_id!r} ({roles}): {user.user_id}")
    if args.totp:
        _print_enrollment(user.username, store.enroll_totp(user.username, issuer=args.issuer))
    return 0


def enroll_totp(args: argparse.Namespace) -> int:
    """Enroll ``args.username`` of tenant ``args.tenant`` in TOTP and print the URI and
    backup codes once (or drop the enrollment with ``--disable``).

    Raises:
        UserCommandError: no such user in that tenant, or ``--disable`` without an
            enrollment.
    """
    store = _store(args)
    user = store.get_user(args.username)
    if user is None or user.tenant_id != args.tenant:
        raise UserCommandError(f"no user named {args.username!r} in tenant {args.tenant!r}")
    if args.disable:
        if not store.disable_totp(user.username):
            raise UserCommandError(f"user {user.username!r} is not enrolled in TOTP")
        print(f"removed the TOTP enrollment and backup codes of {user.username!r}")
        return 0
    _print_enrollment(user.username, store.enroll_totp(user.username, issuer=args.issuer))
    return 0


def _print_enrollment(username: str, enrollment: Any) -> None:
    print(f"TOTP enrolled for {username!r}; this is shown once.")
    print("Add it to an authenticator app (as a QR code or by hand):")
    print(f"  {enrollment.provisioning_uri}")
    print(f"  secret: {enrollment.secret}")
    print("Backup codes (each works once, in place of a code; keep them offline):")
    for code in enrollment.backup_codes:
        print(f"  {code}")


def list_users(args: argparse.Namespace) -> int:
    """Print the users of the store (one tenant's with ``--tenant``)."""
    import sqlalchemy as sa

    from kailash_nb.store.schema import auth_users

    store = _store(args)
    query = sa.select(
        auth_users.c.username,
        auth_users.c.tenant_id,
        auth_users.c.roles,
        auth_users.c.user_id,
        auth_users.c.created_at,
    ).order_by(auth_users.c.tenant_id, auth_users.c.username_key)
    if args.tenant is not None:
        query = query.where(auth_users.c.tenant_id == args.tenant)
    with store.engine.connect() as connection:
        rows: list[dict[str, Any]] = [
            {
                "username": row.username,
                "tenant": row.tenant_id,
                "roles": ",".join(row.roles or ()),
                "user_id": row.user_id,
                "created": format_time(row.created_at),
            }
            for row in connection.execute(query)
        ]
    if not rows:
        print("no users" + (f" in tenant {args.tenant!r}" if args.tenant is not None else ""))
        return 0
    print(format_table(rows, ["username", "tenant", "roles", "user_id", "created"]))
    return 0


def remove_user(args: argparse.Namespace) -> int:
    """Delete the user ``args.username`` of tenant ``args.tenant``.

    Raises:
        UserCommandError: no such user in that tenant.
    """
    store = _store(args)
    user = store.get_user(args.username)
    if user is None or user.tenant_id != args.tenant:
        raise UserCommandError(f"no user named {args.username!r} in tenant {args.tenant!r}")
    if not store.remove_user(user.username):
        raise UserCommandError(f"no user named {args.username!r} in tenant {args.tenant!r}")
    print(f"removed user {user.username!r} from tenant {user.tenant_id!r}")
    return 0


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        if password.endswith("\r"):
            password = password[:-1]
        if not password:
            raise UserCommandError("--password-stdin: no password on stdin")
        return password
    try:
        password = getpass.getpass("Password: ")
        again = getpass.getpass("Repeat password: ")
    except EOFError:
        raise UserCommandError(
            "no password entered (use --password-stdin to pipe one in)"
        ) from None
    except KeyboardInterrupt:
        raise UserCommandError("cancelled; no user was added") from None
    if password != again:
        raise UserCommandError("the passwords do not match")
    return password


def _store(args: argparse.Namespace) -> Any:
    from kailash_nb.security.passwords import UserStore

    return UserStore(args.database_url)


def _issuer_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--issuer",
        default="kailash_nb",
        metavar="NAME",
        help="issuer name the authenticator app shows (default: kailash_nb; use the "
        "gateway's SecurityConfig.totp_issuer)",
    )
