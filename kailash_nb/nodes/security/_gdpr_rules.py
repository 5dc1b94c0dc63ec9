"""What the GDPR node knows without the PII engine: which field names hold personal
data, how a value is generalised, and the retention and lawful-basis checks."""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "LAWFUL_BASES",
    "check_record",
    "field_category",
    "generalize",
]

#: The lawful bases of GDPR article 6(1).
LAWFUL_BASES = frozenset(
    {
        "consent",
        "contract",
        "legal_obligation",
        "vital_interests",
        "public_task",
        "legitimate_interests",
    }
)

# Field names that hold one category whatever the value looks like ("Jane Doe" in a
# ``name`` column has no cue a text recognizer could use).
_FIELD_CATEGORIES = {
    "email": "email",
    "e_mail": "email",
    "email_address": "email",
    "phone": "phone",
    "phone_number": "phone",
    "mobile": "phone",
    "telephone": "phone",
    "name": "person_name",
    "full_name": "person_name",
    "first_name": "person_name",
    "last_name": "person_name",
    "surname": "person_name",
    "given_name": "person_name",
    "family_name": "person_name",
    "ssn": "us_ssn",
    "social_security_number": "us_ssn",
    "iban": "iban",
    "card_number": "credit_card",
    "credit_card": "credit_card",
    "ip": "ip_address",
    "ip_address": "ip_address",
    "client_ip": "ip_address",
    "address": "postal_address",
    "street": "postal_address",
    "street_address": "postal_address",
    "postcode": "postal_code",
    "post_code": "postal_code",
    "postal_code": "postal_code",
    "zip": "postal_code",
    "zip_code": "postal_code",
    "birth_date": "date_of_birth",
    "birthdate": "date_of_birth",
    "date_of_birth": "date_of_birth",
    "dob": "date_of_birth",
    "age": "age",
}


def field_category(name: str) -> str | None:
    """The category a field of this name holds (``email``, ``person_name``...), if any."""
    return _FIELD_CATEGORIES.get(re.sub(r"[\s-]+", "_", name.strip().lower()))


def generalize(category: str, value: Any) -> Any:
    """A coarser value that keeps what analysis needs: an email's domain, a phone
    number's country code, an IP's /24 (IPv4) or /48 (IPv6) network, the year of a
    date of birth, a ten-year age band, a postcode's first part; anything else is
    masked (``<redacted:category>``)."""
    text = str(value).strip()
    if category == "email" and "@" in text:
        return f"*@{text.rsplit('@', 1)[1].lower()}"
    if category == "phone" and text.startswith("+"):
        digits = re.match(r"\+\d{1,3}", text.replace(" ", ""))
        return f"{digits[0]} ***" if digits else f"<redacted:{category}>"
    if category == "ip_address":
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return f"<redacted:{category}>"
        prefix = 24 if address.version == 4 else 48
        return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
    if category == "date_of_birth":
        year = re.search(r"\b(19|20)\d{2}\b", text)
        return year[0] if year else f"<redacted:{category}>"
    if category == "age" and isinstance(value, (int, float)) and not isinstance(value, bool):
        band = int(value) // 10 * 10
        return f"{band}-{band + 9}"
    if category == "postal_code" and len(text) >= 3:
        return text.split()[0][:3] + "*" * max(0, len(text.replace(" ", "")) - 3)
    return f"<redacted:{category}>"


def _when(value: Any) -> datetime.datetime | None:
    if isinstance(value, datetime.datetime):
        moment = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        moment = datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    elif isinstance(value, str):
        try:
            moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def check_record(
    record: Mapping[str, Any],
    *,
    retention_days: int,
    now: datetime.datetime,
    timestamp_field: str,
    lawful_basis_field: str,
    consent_field: str,
) -> list[dict[str, str]]:
    """The violations of one record: no or an unknown lawful basis, consent as the
    basis without a consent record, held longer than ``retention_days`` after its
    ``timestamp_field``, or a timestamp that cannot be read."""
    violations = []
    basis = record.get(lawful_basis_field)
    if basis in (None, ""):
        violations.append(
            {"rule": "lawful_basis_missing", "detail": f"no {lawful_basis_field!r} field"}
        )
    elif str(basis).lower() not in LAWFUL_BASES:
        violations.append(
            {
                "rule": "lawful_basis_unknown",
                "detail": f"{basis!r} is not one of {', '.join(sorted(LAWFUL_BASES))}",
            }
        )
    elif str(basis).lower() == "consent" and not record.get(consent_field):
        violations.append(
            {"rule": "consent_not_recorded", "detail": f"basis is consent but no {consent_field!r}"}
        )
    if timestamp_field in record:
        created = _when(record[timestamp_field])
        if created is None:
            violations.append(
                {
                    "rule": "timestamp_unreadable",
                    "detail": f"{timestamp_field!r} is not an ISO 8601 date or epoch seconds",
                }
            )
        elif now - created > datetime.timedelta(days=retention_days):
            age = (now - created).days
            violations.append(
                {
                    "rule": "retention_exceeded",
                    "detail": f"held {age} days, retention is {retention_days} days",
                }
            )
    return violations
