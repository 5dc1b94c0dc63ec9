"""Check digits that tell a real identifier from a digit run of the same shape."""

from __future__ import annotations

__all__ = [
    "de_tax_id_valid",
    "iban_valid",
    "luhn_valid",
    "nl_bsn_valid",
    "payment_card_prefix",
]

# Lengths of the IBANs of the countries most often seen; others must be 15-34 long.
_IBAN_LENGTHS = {
    "AT": 20, "BE": 16, "CH": 21, "CZ": 24, "DE": 22, "DK": 18, "ES": 24, "FI": 18,
    "FR": 27, "GB": 22, "IE": 22, "IT": 27, "LU": 20, "NL": 18, "NO": 15, "PL": 28,
    "PT": 25, "SE": 24,
}  # fmt: skip


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn (mod 10) check of payment cards."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def payment_card_prefix(digits: str) -> bool:
    """True when ``digits`` starts with an issuer prefix of a card network and has that
    network's length (Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay, Maestro)."""
    length = len(digits)
    two, four = int(digits[:2]), int(digits[:4])
    if digits[0] == "4":
        return length in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return length == 16
    if two in (34, 37):
        return length == 15
    if two in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:
        return 14 <= length <= 19
    if four == 6011 or two == 65 or 644 <= int(digits[:3]) <= 649 or two == 62:
        return 16 <= length <= 19
    if 3528 <= four <= 3589:
        return 16 <= length <= 19
    if two in (50, 56, 57, 58, 63, 67):
        return 12 <= length <= 19
    return False


def iban_valid(text: str) -> bool:
    """True when ``text`` (spaces allowed) is an IBAN whose mod-97 check holds and whose
    length fits its country."""
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact[:2].isalpha() or not compact[2:4].isdigit():
        return False
    expected = _IBAN_LENGTHS.get(compact[:2])
    if expected is not None and len(compact) != expected:
        return False
    rearranged = compact[4:] + compact[:4]
    try:
        number = int("".join(str(int(char, 36)) for char in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


def nl_bsn_valid(digits: str) -> bool:
    """True when a 9-digit Dutch BSN passes the 11-proof (weights 9..2 and -1)."""
    if len(digits) != 9 or not digits.isdigit() or digits == "000000000":
        return False
    total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True))
    return (total - int(digits[8])) % 11 == 0


def de_tax_id_valid(digits: str) -> bool:
    """True when an 11-digit German tax id (Steuer-IdNr) has a first digit other than 0,
    one digit repeated in its first ten (two or three times, the others once) and the
    ISO 7064 MOD 11,10 check digit."""
    if len(digits) != 11 or not digits.isdigit() or digits[0] == "0":
        return False
    counts = sorted((digits[:10].count(d) for d in set(digits[:10])), reverse=True)
    if counts[0] not in (2, 3) or any(count != 1 for count in counts[1:]):
        return False
    product = 10
    for char in digits[:10]:
        total = (int(char) + product) % 10 or 10
        product = (total * 2) % 11
    check = 11 - product
    return (0 if check == 10 else check) == int(digits[10])
