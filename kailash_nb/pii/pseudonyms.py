"""Keyed pseudonyms: the same value always gives the same token, and nobody without the
key can compute it (PII-05).

A bare SHA-256 of a phone number is not a pseudonym: there are few enough phone numbers
to hash them all and look the digest up. :class:`Pseudonymizer` uses HMAC-SHA256 with a
secret key instead. The key is managed, never built in: pass it, or set
``KAILASH_NB_PII_KEY`` (at least 32 bytes); without one :meth:`Pseudonymizer.from_env`
raises :class:`PIIKeyError`::

    pseudonyms = Pseudonymizer.from_env()
    pseudonyms.pseudonym("+44 20 7946 0958", "phone")   # 'phone_' and 16 hex digits
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping

from kailash_nb.pii.detection import PIIMatch
from kailash_nb.sdk_exceptions import KailashException

__all__ = ["MIN_PII_KEY_BYTES", "PII_KEY_ENV", "PIIKeyError", "Pseudonymizer"]

#: The environment variable the pseudonymisation key is read from.
PII_KEY_ENV = "KAILASH_NB_PII_KEY"
#: Shortest key accepted (the bar of the audit trail's checkpoint key).
MIN_PII_KEY_BYTES = 32
_DIGIT_CATEGORIES = frozenset({"phone", "credit_card", "us_ssn", "nl_bsn", "de_tax_id"})


class PIIKeyError(KailashException, ValueError):
    """No usable pseudonymisation key: none configured, or too short."""


class Pseudonymizer:
    """Turns values into keyed pseudonyms (``<category>_<16 hex digits>``).

    Values are normalised first (case and spacing of emails, IBANs and ids; only the
    digits of phone and card numbers), so ``+44 20 7946 0958`` and ``+442079460958``
    share a pseudonym.

    Raises:
        PIIKeyError: ``key`` is missing or shorter than ``MIN_PII_KEY_BYTES``.
    """

    def __init__(self, key: bytes | str) -> None:
        if isinstance(key, str):
            key = key.encode("utf-8")
        if not isinstance(key, (bytes, bytearray)) or len(key) < MIN_PII_KEY_BYTES:
            raise PIIKeyError(
                f"a pseudonymisation key must be at least {MIN_PII_KEY_BYTES} bytes; "
                f"set {PII_KEY_ENV} to a random secret (e.g. `openssl rand -hex 32`)"
            )
        self._key = bytes(key)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Pseudonymizer:
        """The pseudonymiser keyed by ``KAILASH_NB_PII_KEY``.

        Raises:
            PIIKeyError: the variable is unset, empty or too short.
        """
        value = (os.environ if environ is None else environ).get(PII_KEY_ENV, "")
        if not value:
            raise PIIKeyError(
                f"{PII_KEY_ENV} is not set: pseudonyms need a managed secret key of at least "
                f"{MIN_PII_KEY_BYTES} bytes (there is no default key)"
            )
        return cls(value)

    def digest(self, value: str, category: str = "value") -> str:
        """The full HMAC-SHA256 (hex) of the normalised ``value``."""
        normal = _normalise(value, category)
        message = f"{category}\x00{normal}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def pseudonym(self, value: str, category: str = "value") -> str:
        """``<category>_<first 16 hex digits of the digest>``: stable for a key."""
        return f"{category}_{self.digest(value, category)[:16]}"

    def replace(self, match: PIIMatch) -> str:
        """A match's pseudonym: pass as ``PIIRedactor(replace=...)``."""
        return self.pseudonym(match.text, match.category)

    def __repr__(self) -> str:
        return "Pseudonymizer(key=<redacted>)"


def _normalise(value: str, category: str) -> str:
    if category in _DIGIT_CATEGORIES:
        digits = "".join(char for char in value if char.isdigit())
        return digits or value
    words = " ".join(value.split()).casefold()
    return words if category == "person_name" else words.replace(" ", "")
