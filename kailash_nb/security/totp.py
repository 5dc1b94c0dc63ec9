"""TOTP second factors (RFC 6238, via pyotp) and one-time backup codes, in the store.

A code is accepted for the current 30 s step or one step either side (clock drift),
never further (AUTH-29), and at most once: the accepted step is stored per user and a
code for the same or an earlier step is refused, atomically across workers (AUTH-28).

Storage:

* the TOTP secret is stored **unencrypted** (base32) in ``kailash_nb_auth_totp``:
  anyone who can read that table can generate codes, so protect the database (and its
  backups) at least as well as the password hashes;
* backup codes are random, about 79 bits each, and stored only as
  ``SHA-256(domain, user_id, code)``. A fast hash is enough for codes with that much
  entropy (an offline search of 2**79 is out of reach), and unlike a salted argon2
  hash it can be looked up directly, so a code is checked and used up in one
  conditional ``UPDATE`` (AUTH-31)::

    factors = SecondFactors(engine)
    enrollment = factors.enroll(user_id, "alice", issuer="kailash_nb")
    print(enrollment.provisioning_uri, enrollment.backup_codes)
    factors.verify_totp(user_id, "123456")      # True once per code
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyotp
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from kailash_nb.sdk_exceptions import KailashException
from kailash_nb.security.errors import (
    AUTH_ERROR_CODES,
    AuthenticationError,
    SecurityConfigurationError,
)
from kailash_nb.store.schema import auth_backup_codes, auth_totp

__all__ = [
    "BACKUP_CODE_COUNT",
    "SECOND_FACTOR_CODES",
    "TOTP_STEP_SECONDS",
    "SecondFactorError",
    "SecondFactors",
    "TotpEnrollment",
]

TOTP_STEP_SECONDS = 30
TOTP_DIGITS = 6
#: Steps accepted either side of the current one.
TOTP_WINDOW = 1
BACKUP_CODE_COUNT = 10
# No 0/o, 1/l/i: codes are read off paper. 16 of 31 symbols: about 79 bits.
_BACKUP_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_BACKUP_CHARS = 16
_BACKUP_DOMAIN = b"kailash_nb backup code v1\x00"

#: ``SecondFactorError.code`` values, with what they mean.
SECOND_FACTOR_CODES: dict[str, str] = {
    code: AUTH_ERROR_CODES[code] for code in ("second_factor_required", "invalid_second_factor")
}


class SecondFactorError(AuthenticationError):
    """A sign-in of a TOTP-enrolled user without an acceptable second factor.

    Attributes:
        code: one of ``SECOND_FACTOR_CODES``.
    """

    def __init__(self, code: str, message: str) -> None:
        if code not in SECOND_FACTOR_CODES:
            raise ValueError(f"unknown second-factor error code {code!r}")
        KailashException.__init__(self, message)
        self.code = code


@dataclass(frozen=True)
class TotpEnrollment:
    """A new TOTP enrollment, shown to the user once and never stored in this form.

    Attributes:
        secret: the base32 TOTP secret (also inside ``provisioning_uri``).
        provisioning_uri: ``otpauth://totp/...`` for an authenticator app (QR code).
        backup_codes: one-time codes (``xxxx-xxxx-xxxx-xxxx``) for a lost device.
    """

    secret: str
    provisioning_uri: str
    backup_codes: tuple[str, ...]

    def __repr__(self) -> str:
        return "TotpEnrollment(secret=<hidden>, provisioning_uri=<hidden>, backup_codes=<hidden>)"


class SecondFactors:
    """TOTP enrollments and backup codes of users in the store at ``engine``.

    Args:
        engine: the store's engine (the ``UserStore``'s).
        clock: seconds since the epoch; injectable so tests need not wait 30 s.
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    def enroll(self, user_id: str, username: str, *, issuer: str) -> TotpEnrollment:
        """Give ``user_id`` a new TOTP secret and new backup codes, replacing any old ones
        (in one transaction: the old secret and codes stop working at once).

        Raises:
            SecurityConfigurationError: ``issuer`` is not 1-64 characters without ``:``.
        """
        if not (isinstance(issuer, str) and 0 < len(issuer) <= 64 and ":" not in issuer):
            raise SecurityConfigurationError(
                f"TOTP issuer {issuer!r} must be 1-64 characters without ':'"
            )
        secret = pyotp.random_base32()
        codes = tuple(_new_backup_code() for _ in range(BACKUP_CODE_COUNT))
        now = self.clock()
        with self.engine.begin() as connection:
            connection.execute(auth_totp.delete().where(auth_totp.c.user_id == user_id))
            connection.execute(
                auth_backup_codes.delete().where(auth_backup_codes.c.user_id == user_id)
            )
            connection.execute(
                auth_totp.insert().values(
                    user_id=user_id, secret=secret, last_step=None, enrolled_at=now
                )
            )
            connection.execute(
                auth_backup_codes.insert(),
                [
                    {
                        "user_id": user_id,
                        "code_hash": _backup_hash(user_id, code),
                        "used_at": None,
                        "created_at": now,
                    }
                    for code in codes
                ],
            )
        uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)
        return TotpEnrollment(secret=secret, provisioning_uri=uri, backup_codes=codes)

    def is_enrolled(self, user_id: str) -> bool:
        """Whether ``user_id`` must give a second factor to sign in."""
        with self.engine.connect() as connection:
            found = connection.execute(
                sa.select(auth_totp.c.user_id).where(auth_totp.c.user_id == user_id)
            ).first()
        return found is not None

    def enrolled_at(self, user_id: str) -> float | None:
        """When ``user_id`` was enrolled (seconds since the epoch), or ``None``."""
        with self.engine.connect() as connection:
            return connection.execute(
                sa.select(auth_totp.c.enrolled_at).where(auth_totp.c.user_id == user_id)
            ).scalar()

    def remove(self, user_id: str) -> bool:
        """Drop ``user_id``'s enrollment and backup codes; ``False`` if there was none."""
        with self.engine.begin() as connection:
            removed = connection.execute(
                auth_totp.delete().where(auth_totp.c.user_id == user_id)
            ).rowcount
            connection.execute(
                auth_backup_codes.delete().where(auth_backup_codes.c.user_id == user_id)
            )
        return bool(removed)

    def unused_backup_codes(self, user_id: str) -> int:
        """How many of ``user_id``'s backup codes are still unused."""
        table = auth_backup_codes
        with self.engine.connect() as connection:
            return connection.execute(
                sa.select(sa.func.count())
                .select_from(table)
                .where(table.c.user_id == user_id, table.c.used_at.is_(None))
            ).scalar_one()

    def verify_totp(self, user_id: str, code: object) -> bool:
        """Whether ``code`` is ``user_id``'s TOTP code for now (±1 step) and was not used.

        Accepting it records its step, so the same code (or any code of an earlier or
        the same step) is refused afterwards, by every worker.
        """
        if not (isinstance(code, str) and len(code) == TOTP_DIGITS and code.isascii()):
            return False
        if not code.isdigit():
            return False
        with self.engine.connect() as connection:
            secret = connection.execute(
                sa.select(auth_totp.c.secret).where(auth_totp.c.user_id == user_id)
            ).scalar()
        if secret is None:
            return False
        totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP_SECONDS)
        current = int(self.clock()) // TOTP_STEP_SECONDS
        matched = None
        # Compare against every candidate step, so the time taken says nothing.
        for step in range(current - TOTP_WINDOW, current + TOTP_WINDOW + 1):
            if hmac.compare_digest(totp.at(step * TOTP_STEP_SECONDS), code) and matched is None:
                matched = step
        if matched is None:
            return False
        with self.engine.begin() as connection:
            claimed = connection.execute(
                auth_totp.update()
                .where(
                    auth_totp.c.user_id == user_id,
                    auth_totp.c.secret == secret,
                    sa.or_(auth_totp.c.last_step.is_(None), auth_totp.c.last_step < matched),
                )
                .values(last_step=matched)
            ).rowcount
        return claimed == 1

    def use_backup_code(self, user_id: str, code: object) -> bool:
        """Whether ``code`` is one of ``user_id``'s unused backup codes; using it up."""
        normalized = _normalize_backup_code(code)
        if normalized is None:
            return False
        table = auth_backup_codes
        with self.engine.begin() as connection:
            used = connection.execute(
                table.update()
                .where(
                    table.c.user_id == user_id,
                    table.c.code_hash == _backup_hash(user_id, normalized),
                    table.c.used_at.is_(None),
                )
                .values(used_at=self.clock())
            ).rowcount
        return used == 1


def _new_backup_code() -> str:
    raw = "".join(secrets.choice(_BACKUP_ALPHABET) for _ in range(_BACKUP_CHARS))
    return "-".join(raw[index : index + 4] for index in range(0, _BACKUP_CHARS, 4))


def _normalize_backup_code(code: object) -> str | None:
    if not isinstance(code, str) or len(code) > 64:
        return None
    normalized = "".join(code.split()).replace("-", "").lower()
    if len(normalized) != _BACKUP_CHARS or any(c not in _BACKUP_ALPHABET for c in normalized):
        return None
    return normalized


def _backup_hash(user_id: str, code: str) -> str:
    normalized = code.replace("-", "")
    digest = hashlib.sha256(_BACKUP_DOMAIN + user_id.encode() + b"\x00" + normalized.encode())
    return digest.hexdigest()
