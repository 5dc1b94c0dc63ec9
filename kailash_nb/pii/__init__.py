"""The PII engine: find, mask and pseudonymise personal data in text and nested data.

One engine serves the :class:`~kailash_nb.logging.EnterpriseLogger` (``pii_redaction``)
and the ``GDPRComplianceNode``::

    from kailash_nb.pii import PIIDetector, PIIRedactor

    PIIDetector().detect("Dear Ms. Jane Doe, your card 4111 1111 1111 1111")
    PIIRedactor().redact({"user": {"email": "jane@example.com", "order": "ORD-2024-0042"}})
    # {"user": {"email": "<redacted:email>", "order": "ORD-2024-0042"}}

Categories: email, phone (international and US formats), credit card (issuer prefix and
Luhn check), IBAN (country length and mod-97), US SSN, UK National Insurance number, Dutch
BSN (11-proof) and German tax id (ISO 7064 check digit) next to their names, IPv4 and
IPv6 (parsed by :mod:`ipaddress`), JWTs, API keys (known prefixes, or 32+ characters of
mixed-case high-entropy text) and person names after a cue (``Name:``, ``Dear``,
``Mr.``) at a lower confidence. UUIDs, hex digests, ISO timestamps, order ids,
Unix timestamps and Luhn-invalid digit runs are left alone.

Why our own recognizers rather than Presidio's (``presidio-analyzer`` 2.2, evaluated
with ``benchmarks/bench_pii.py --presidio``): it installs spaCy and its stack (about
390 MB in a fresh environment) and its ``AnalyzerEngine`` loads a spaCy model when built
(offline, it tries to download one and fails); its email recognizer fetches the public
suffix list on first use. Only its pattern recognizers run without a model, one by one,
and names (``PERSON``) need the model. It has no JWT, API key or Dutch BSN recognizer.
On the part of the benchmark corpus its recognizers cover (1,200 records), they scored
recall 0.969 and precision 0.807 (0.847 at score >= 0.4): phone numbers found in Unix
timestamps and order ids, US SSNs in bare nine-digit numbers; Mastercard 2-series cards
missed, and phone numbers in unassigned ranges (the corpus draws digits at random, and
``phonenumbers`` is strict about ranges) not reported. These recognizers scored 1.000
and 1.000 on the same records -- a corpus written with them in mind, so read it as "no
regression" rather than as field accuracy. They are stdlib-only, a few hundred lines,
and the test suite holds them to recall >= 0.99 and precision >= 0.95 on that corpus.
"""

from __future__ import annotations

from kailash_nb.pii.detection import PIIDetector, PIIMatch
from kailash_nb.pii.masking import CYCLE_MARKER, DEPTH_MARKER, PIIRedactor, marker
from kailash_nb.pii.pseudonyms import (
    MIN_PII_KEY_BYTES,
    PII_KEY_ENV,
    PIIKeyError,
    Pseudonymizer,
)
from kailash_nb.pii.recognizers import CATEGORIES, DEFAULT_RECOGNIZERS, Recognizer

__all__ = [
    "CATEGORIES",
    "CYCLE_MARKER",
    "DEFAULT_RECOGNIZERS",
    "DEPTH_MARKER",
    "MIN_PII_KEY_BYTES",
    "PII_KEY_ENV",
    "PIIDetector",
    "PIIKeyError",
    "PIIMatch",
    "PIIRedactor",
    "Pseudonymizer",
    "Recognizer",
    "marker",
]
