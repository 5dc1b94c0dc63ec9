"""A synthetic labelled corpus for the PII engine: log-like sentences mixing PII of every
category with identifiers that only look like PII, generated from a seed.

Shared by ``tests/pii`` (which assert its recall and precision) and
``benchmarks/bench_pii.py`` (which prints them).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import random
import uuid
from dataclasses import dataclass

__all__ = [
    "LabelledRecord",
    "Score",
    "generate_corpus",
    "luhn_check_digit",
    "score_redaction",
    "score_spans",
]

_FIRST = ["Jane", "John", "Amelia", "Noah", "Sophie", "Lukas", "Fatima", "Mateo", "Yuki", "Olivia"]
_LAST = ["Doe", "Smith", "Jansen", "Müller", "Okafor", "García", "Tanaka", "Dubois", "Novak"]
_DOMAINS = ["example.com", "mail.example.org", "corp.example.net", "uni.example.ac.uk"]


@dataclass(frozen=True)
class LabelledRecord:
    """One sentence, the PII in it (``(category, value)`` pairs) and the look-alikes
    that must survive."""

    text: str
    pii: tuple[tuple[str, str], ...]
    lookalikes: tuple[str, ...]


def luhn_check_digit(partial: str) -> str:
    """The digit that makes ``partial + digit`` pass the Luhn check."""
    total = 0
    for position, char in enumerate(reversed(partial)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(count))


def _card(rng: random.Random) -> str:
    jcb = str(rng.randint(3528, 3589))
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("37", 15),
                                 ("34", 15), ("6011", 16), ("4", 13), (jcb, 16)])  # fmt: skip
    partial = prefix + _digits(rng, length - len(prefix) - 1)
    number = partial + luhn_check_digit(partial)
    style = rng.choice(["plain", "space", "dash"])
    if style == "plain" or length != 16:
        return number
    sep = " " if style == "space" else "-"
    return sep.join(number[i : i + 4] for i in range(0, 16, 4))


def _luhn_invalid_run(rng: random.Random) -> str:
    partial = rng.choice("4556") + _digits(rng, 14)
    good = luhn_check_digit(partial)
    bad = str((int(good) + rng.randint(1, 9)) % 10)
    number = partial + bad
    if rng.random() < 0.4:
        return " ".join(number[i : i + 4] for i in range(0, 16, 4))
    return number


def _iban(rng: random.Random) -> str:
    country, bban = rng.choice(
        [
            ("DE", lambda: _digits(rng, 18)),
            (
                "GB",
                lambda: (
                    "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4))
                    + _digits(rng, 14)
                ),
            ),
            (
                "NL",
                lambda: (
                    "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4))
                    + _digits(rng, 10)
                ),
            ),
            ("FR", lambda: _digits(rng, 23)),
            ("ES", lambda: _digits(rng, 20)),
        ]
    )
    body = bban()
    numeric = int("".join(str(int(c, 36)) for c in body + country + "00"))
    iban = f"{country}{98 - numeric % 97:02d}{body}"
    if rng.random() < 0.5:
        return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban


def _ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _nino(rng: random.Random) -> str:
    first = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    second = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    while first + second in {"BG", "GB", "NK", "KN", "NT", "TN", "ZZ"}:
        second = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    digits = _digits(rng, 6)
    suffix = rng.choice("ABCD")
    if rng.random() < 0.5:
        return f"{first}{second} {digits[:2]} {digits[2:4]} {digits[4:]} {suffix}"
    return f"{first}{second}{digits}{suffix}"


def _bsn(rng: random.Random) -> str:
    while True:
        digits = str(rng.randint(1, 9)) + _digits(rng, 7)
        total = sum(int(d) * w for d, w in zip(digits, range(9, 1, -1), strict=True))
        check = total % 11
        if check < 10:
            return digits + str(check)


def _de_tax_id(rng: random.Random) -> str:
    while True:
        pool = rng.sample("0123456789", 9)
        if pool[0] == "0":
            continue
        digits = pool[:]
        digits.insert(rng.randint(1, 9), rng.choice(pool))
        first_ten = "".join(digits)
        product = 10
        for char in first_ten:
            total = (int(char) + product) % 10 or 10
            product = (total * 2) % 11
        check = 11 - product
        return first_ten + str(0 if check == 10 else check)


def _phone(rng: random.Random) -> str:
    return rng.choice(
        [
            lambda: f"+44 20 {_digits(rng, 4)} {_digits(rng, 4)}",
            lambda: f"+1 ({rng.randint(201, 989)}) {rng.randint(200, 999)}-{_digits(rng, 4)}",
            lambda: f"+1-{rng.randint(201, 989)}-{rng.randint(200, 999)}-{_digits(rng, 4)}",
            lambda: f"+49 30 {_digits(rng, 8)}",
            lambda: (
                f"+33 1 {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)}"
            ),
            lambda: f"+31 20 {_digits(rng, 3)} {_digits(rng, 4)}",
            lambda: f"+91 9{_digits(rng, 4)} {_digits(rng, 5)}",
            lambda: f"+86138{_digits(rng, 8)}",
            lambda: f"({rng.randint(201, 989)}) {rng.randint(200, 999)}-{_digits(rng, 4)}",
            lambda: f"{rng.randint(201, 989)}-{rng.randint(200, 999)}-{_digits(rng, 4)}",
            lambda: f"020 {_digits(rng, 4)} {_digits(rng, 4)}",
        ]
    )()


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return str(ipaddress.IPv4Address(rng.randint(0x01000000, 0xDFFFFFFF)))
    address = ipaddress.IPv6Address(rng.getrandbits(128))
    if rng.random() < 0.5:
        address = ipaddress.IPv6Address((0x20010DB8 << 96) | rng.getrandbits(16))
    return address.compressed if rng.random() < 0.7 else address.exploded


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(rng: random.Random) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(
        json.dumps(
            {"sub": _digits(rng, 6), "exp": rng.randint(1_700_000_000, 1_900_000_000)}
        ).encode()
    )
    return f"{header}.{body}.{_b64(rng.randbytes(32))}"


def _api_key(rng: random.Random) -> str:
    alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

    def run(n: int, chars: str = alnum) -> str:
        return "".join(rng.choice(chars) for _ in range(n))

    return rng.choice(
        [
            lambda: f"sk-proj-{run(40)}",
            lambda: f"sk_live_{run(24)}",
            lambda: f"ghp_{run(36)}",
            lambda: f"AKIA{run(16, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567')}",
            lambda: f"xoxb-{_digits(rng, 12)}-{run(24)}",
            lambda: f"AIza{run(35)}",
            lambda: run(40),
        ]
    )()


def _name(rng: random.Random) -> tuple[str, str]:
    name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    cue = rng.choice(["Dear {}", "Name: {}", "Mr. {}", "Dr. {}", "customer={}", "Dear Ms. {}"])
    return cue.format(name), name


def _email(rng: random.Random) -> str:
    user = f"{rng.choice(_FIRST).lower()}.{rng.choice(_LAST).lower()}{rng.randint(1, 99)}"
    return f"{user.replace('ü', 'u').replace('í', 'i')}@{rng.choice(_DOMAINS)}"


_GENERATORS = {
    "email": _email,
    "phone": _phone,
    "credit_card": _card,
    "iban": _iban,
    "us_ssn": _ssn,
    "uk_nino": _nino,
    "ip_address": _ip,
    "jwt": _jwt,
    "api_key": _api_key,
}
_CUED = {
    "nl_bsn": lambda rng: ("BSN {}", _bsn(rng)),
    "de_tax_id": lambda rng: ("Steuer-ID {}", _de_tax_id(rng)),
}


def _lookalike(rng: random.Random) -> str:
    return rng.choice(
        [
            lambda: f"ORD-{rng.randint(2019, 2026)}-{_digits(rng, 6)}",
            lambda: f"PO-{_digits(rng, 8)}",
            lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            lambda: hashlib.sha256(rng.randbytes(16)).hexdigest(),
            lambda: str(rng.randint(1_500_000_000, 1_900_000_000)),
            lambda: str(rng.randint(1_500_000_000_000, 1_900_000_000_000)),
            lambda: (
                f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
                f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"
            ),
            lambda: (
                f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} "
                f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
                f".{_digits(rng, 6)}+00:00"
            ),
            lambda: _luhn_invalid_run(rng),
            lambda: f"v{rng.randint(0, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 99)}",
            lambda: f"{rng.randint(1, 999)} ms",
            lambda: _digits(rng, 9),
            lambda: hashlib.sha1(rng.randbytes(8)).hexdigest()[:7],
            lambda: ":".join(f"{rng.randint(0, 255):02x}" for _ in range(6)),
            lambda: f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
            lambda: f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            lambda: f"EUR {rng.randint(1, 99)},{_digits(rng, 3)}.{_digits(rng, 2)}",
            lambda: f"port {rng.randint(1024, 65535)}",
            lambda: f"HTTP {rng.choice(['200', '404', '503'])}",
            lambda: f"build-{_digits(rng, 12)}",
        ]
    )()


_TEMPLATES = [
    "user {pii} placed order {look}",
    "request from {pii} at {look} failed",
    "{look}: updated contact {pii}",
    "payment ref {look} with {pii} accepted",
    "audit {look} subject={pii} action=read",
    "retrying {look}; last value was {pii}.",
]


def generate_corpus(count: int = 2400, seed: int = 16) -> list[LabelledRecord]:
    """``count`` records, each with one or two pieces of PII (every category in turn)
    and one or two look-alikes; the same ``seed`` gives the same corpus."""
    rng = random.Random(seed)
    categories = [*_GENERATORS, *_CUED, "person_name"]
    records = []
    for index in range(count):
        pii: list[tuple[str, str]] = []
        shown: list[str] = []
        for offset in range(1 + (index % 3 == 0)):
            category = categories[(index + offset * 5) % len(categories)]
            if category in _GENERATORS:
                value = _GENERATORS[category](rng)
                shown.append(value)
            elif category in _CUED:
                cue, value = _CUED[category](rng)
                shown.append(cue.format(value))
            else:
                phrase, value = _name(rng)
                shown.append(phrase)
            pii.append((category, value))
        looks = [_lookalike(rng) for _ in range(1 + (index % 2))]
        template = rng.choice(_TEMPLATES)
        text = template.format(pii=" and ".join(shown), look=" / ".join(looks))
        records.append(LabelledRecord(text, tuple(pii), tuple(looks)))
    return records


@dataclass(frozen=True)
class Score:
    """Recall and precision over a corpus, with the counts behind them."""

    true_positives: int
    false_negatives: int
    false_positives: int

    @property
    def recall(self) -> float:
        found = self.true_positives + self.false_negatives
        return self.true_positives / found if found else 1.0

    @property
    def precision(self) -> float:
        flagged = self.true_positives + self.false_positives
        return self.true_positives / flagged if flagged else 1.0

    def __str__(self) -> str:
        return (
            f"recall {self.recall:.4f}  precision {self.precision:.4f}  "
            f"(tp {self.true_positives}, fn {self.false_negatives}, fp {self.false_positives})"
        )


def score_spans(corpus, detect) -> Score:
    """Score ``detect(text) -> [(category, start, end)]``: a labelled value counts as
    found when a span of its category overlaps it; every other span is a false positive."""
    tp = fn = fp = 0
    for record in corpus:
        spans = list(detect(record.text))
        labelled = []
        for category, value in record.pii:
            start = record.text.find(value)
            labelled.append((category, start, start + len(value)))
        for category, start, end in labelled:
            if any(c == category and s < end and start < e for c, s, e in spans):
                tp += 1
            else:
                fn += 1
        for c, s, e in spans:
            if not any(
                c == category and s < end and start < e for category, start, end in labelled
            ):
                fp += 1
    return Score(tp, fn, fp)


def score_redaction(corpus, redact) -> Score:
    """Score ``redact(text) -> text``: a labelled value masked is a true positive, one
    left in the output a false negative; a look-alike that did not survive, or a marker
    beyond the labelled values, is a false positive."""
    tp = fn = fp = 0
    for record in corpus:
        output = redact(record.text)
        masked = sum(value not in output for _, value in record.pii)
        tp += masked
        fn += len(record.pii) - masked
        fp += sum(look not in output for look in record.lookalikes)
        fp += max(0, output.count("<redacted:") - len(record.pii))
    return Score(tp, fn, fp)
