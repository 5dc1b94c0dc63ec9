"""Password hashing (argon2id) and ``UserStore``: users with hashed passwords in the store.

``authenticate`` takes the same path for an unknown user as for a wrong password: it
verifies the password against a dummy hash made with the same parameters, then raises
the same ``AuthenticationError("invalid_credentials")``, so neither the answer nor its
timing says whether the username exists::

    users = UserStore("sqlite:///auth.db")
    users.add_user("alice", "correct horse battery staple", tenant_id="acme", roles=["analyst"])
    user = users.authenticate("alice", "correct horse battery staple")

A user can also be enrolled in TOTP (``enroll_totp``); the gateway then asks for a
code after the password (see ``kailash_nb.security.totp``; the TOTP secret is stored
in the database unencrypted).
"""

from __future__ import annotations

import logging
import secrets
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from kailash_nb.security.claims import check_identifier, check_roles
from kailash_nb.security.errors import AuthenticationError, PasswordPolicyError, UserExistsError
from kailash_nb.security.totp import SecondFactors, TotpEnrollment
from kailash_nb.store.database import get_engine
from kailash_nb.store.schema import auth_backup_codes, auth_totp, auth_users, migrate

__all__ = [
    "MAX_PASSWORD_CHARS",
    "MIN_PASSWORD_CHARS",
    "User",
    "UserStore",
    "hash_password",
    "throttle_key",
    "verify_password",
]

logger = logging.getLogger(__name__)

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
MAX_USERNAME_CHARS = 128
_DEFAULT_HASHER = PasswordHasher()  # argon2id, RFC 9106 low-memory profile


def hash_password(password: str, hasher: PasswordHasher | None = None) -> str:
    """The argon2id hash of ``password`` (salted; encodes its own parameters)."""
    return (hasher or _DEFAULT_HASHER).hash(password)


def verify_password(
    password_hash: str, password: str, hasher: PasswordHasher | None = None
) -> bool:
    """Whether ``password`` matches ``password_hash``; ``False`` for a malformed hash."""
    try:
        return (hasher or _DEFAULT_HASHER).verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class User:
    """A user account (without its password hash)."""

    user_id: str
    username: str
    tenant_id: str
    roles: tuple[str, ...]


class UserStore:
    """Users and their argon2id password hashes in the store at ``store_url``.

    Usernames are unique across tenants and compared after NFKC normalisation and case
    folding, so ``Alice`` and ``alice`` are one account.

    Args:
        store_url: database URL; ``None`` uses ``KAILASH_NB_DATABASE_URL`` or the default
            SQLite file.
        hasher: the argon2 ``PasswordHasher`` (default: argon2-cffi's defaults). Hashes
            made with other parameters still verify and are upgraded on the next login.
        clock: seconds since the epoch, for TOTP steps and login throttling; injectable
            for tests.

    Attributes:
        second_factors: the users' TOTP enrollments and backup codes.
    """

    def __init__(
        self,
        store_url: str | None = None,
        *,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = get_engine(store_url)
        migrate(self.engine)
        self.clock = clock
        self.second_factors = SecondFactors(self.engine, clock=clock)
        self._hasher = hasher or _DEFAULT_HASHER
        # Made once, with this store's parameters, so an unknown user costs what a
        # known one does.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(24))

    def add_user(
        self, username: str, password: str, *, tenant_id: str, roles: Iterable[str]
    ) -> User:
        """Create a user.

        Raises:
            PasswordPolicyError: username not 1-128 printable characters, or password not
                8-1024 characters.
            ClaimsError: ``tenant_id`` or ``roles`` of the wrong type.
            UserExistsError: the (case-insensitive) username is taken.
        """
        display, key = _username(username)
        _check_password(password)
        user = User(
            user_id=str(uuid.uuid4()),
            username=display,
            tenant_id=check_identifier(tenant_id, "tenant_id"),
            roles=tuple(check_roles(roles)),
        )
        now = time.time()
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    auth_users.insert().values(
                        user_id=user.user_id,
                        username=display,
                        username_key=key,
                        tenant_id=user.tenant_id,
                        roles=list(user.roles),
                        password_hash=self._hasher.hash(password),
                        created_at=now,
                        updated_at=now,
                    )
                )
        except sa.exc.IntegrityError:
            raise UserExistsError(f"a user named {display!r} already exists") from None
        return user

    def authenticate(self, username: str, password: str) -> User:
        """The user whose username and password these are.

        Raises:
            AuthenticationError: ``invalid_credentials``, the same for an unknown user,
                a wrong password or a malformed input.
        """
        row = self._row(username)
        stored = row.password_hash if row is not None else self._dummy_hash
        acceptable = isinstance(password, str) and len(password) <= MAX_PASSWORD_CHARS
        # Always one verification, whatever was wrong, so every refusal costs the same.
        matched = self._verify(stored, password if acceptable else "")
        if row is None or not acceptable or not matched:
            raise AuthenticationError(
                "invalid_credentials", "the username or the password is incorrect"
            )
        if self._hasher.check_needs_rehash(stored):
            self._update(row.user_id, password_hash=self._hasher.hash(password))
        return _user(row)

    def get_user(self, username: str) -> User | None:
        """The user named ``username``, or ``None``."""
        row = self._row(username)
        return _user(row) if row is not None else None

    def get_user_by_id(self, user_id: str) -> User | None:
        """The user with id ``user_id``, or ``None``."""
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(auth_users).where(auth_users.c.user_id == str(user_id))
            ).first()
        return _user(row) if row is not None else None

    def set_roles(self, username: str, roles: Iterable[str]) -> User:
        """Replace a user's roles; tokens minted afterwards carry the new ones.

        Raises:
            KeyError: no such user.
        """
        row = self._row(username)
        if row is None:
            raise KeyError(f"no user named {username!r}")
        self._update(row.user_id, roles=check_roles(roles))
        return _user(self._row(username))

    def remove_user(self, username: str) -> bool:
        """Delete a user (and its second factors); ``False`` if there was none."""
        row = self._row(username)
        if row is None:
            return False
        with self.engine.begin() as connection:
            for table in (auth_backup_codes, auth_totp, auth_users):
                connection.execute(table.delete().where(table.c.user_id == row.user_id))
        return True

    def enroll_totp(self, username: str, *, issuer: str = "kailash_nb") -> TotpEnrollment:
        """Enroll ``username`` in TOTP, replacing any earlier secret and backup codes.

        Show the returned provisioning URI and backup codes to the user once: only the
        secret (unencrypted) and the codes' hashes are kept. From now on the user's
        sign-ins need a TOTP code or a backup code after the password.

        Raises:
            KeyError: no such user.
        """
        row = self._row(username)
        if row is None:
            raise KeyError(f"no user named {username!r}")
        return self.second_factors.enroll(row.user_id, row.username, issuer=issuer)

    def disable_totp(self, username: str) -> bool:
        """Drop ``username``'s TOTP enrollment and backup codes; ``False`` if it had none.

        Raises:
            KeyError: no such user.
        """
        row = self._row(username)
        if row is None:
            raise KeyError(f"no user named {username!r}")
        return self.second_factors.remove(row.user_id)

    def totp_enrolled(self, user: User) -> bool:
        """Whether ``user`` must give a second factor to sign in."""
        return self.second_factors.is_enrolled(user.user_id)

    def _row(self, username: object) -> Any:
        try:
            _display, key = _username(username)
        except PasswordPolicyError:
            return None
        with self.engine.connect() as connection:
            return connection.execute(
                sa.select(auth_users).where(auth_users.c.username_key == key)
            ).first()

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except VerificationError:
            return False
        except InvalidHashError:
            logger.error("a stored password hash is malformed; the login is refused")
            return False

    def _update(self, user_id: str, **values: Any) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                auth_users.update()
                .where(auth_users.c.user_id == user_id)
                .values(**values, updated_at=time.time())
            )


def throttle_key(username: object) -> str:
    """The account key failed sign-ins of ``username`` are counted under: the same for
    every spelling of one account, and for a username nobody has."""
    try:
        return _username(username)[1]
    except PasswordPolicyError:
        return f"invalid:{username!r}"[:512]


def _username(username: object) -> tuple[str, str]:
    if not isinstance(username, str):
        raise PasswordPolicyError("username must be a string")
    display = unicodedata.normalize("NFKC", username)
    if (
        not 0 < len(display) <= MAX_USERNAME_CHARS
        or display != display.strip()
        or any(unicodedata.category(char)[0] in "CZ" and char != " " for char in display)
    ):
        raise PasswordPolicyError(
            f"username must be 1-{MAX_USERNAME_CHARS} printable characters without leading or "
            "trailing spaces"
        )
    return display, display.casefold()


def _check_password(password: object) -> None:
    if (
        not isinstance(password, str)
        or not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS
    ):
        raise PasswordPolicyError(
            f"password must be {MIN_PASSWORD_CHARS}-{MAX_PASSWORD_CHARS} characters"
        )


def _user(row: Any) -> User:
    return User(
        user_id=row.user_id,
        username=row.username,
        tenant_id=row.tenant_id,
        roles=tuple(row.roles or ()),
    )
