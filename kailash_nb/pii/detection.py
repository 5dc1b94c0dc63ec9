"""Finding PII in text: :class:`PIIDetector` runs the recognizers over a string and
returns non-overlapping :class:`PIIMatch` spans with their category and confidence::

    PIIDetector().detect("mail bob@example.com, card 4111 1111 1111 1111")
    # [PIIMatch('email', 5, 20, 'bob@example.com', 0.95),
    #  PIIMatch('credit_card', 27, 46, '4111 1111 1111 1111', 0.95)]

Identifiers that only look like PII are protected: a candidate overlapping a UUID, a hex
digest (32 or more hex digits), an ISO 8601 timestamp or an order-style id
(``ORD-2024-000123``) is dropped, so those come through redaction untouched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from kailash_nb.pii.recognizers import DEFAULT_RECOGNIZERS, Recognizer

__all__ = ["PIIDetector", "PIIMatch"]

_PROTECTED = re.compile(
    r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
    r"|\b[0-9a-fA-F]{32,}\b"
    r"|\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"
    r"|\b[A-Z]{2,6}[-_#]\d[\d-]{3,}\d\b"
)
# A string without any of these cannot hold a match of the default recognizers.
_MAYBE = re.compile(
    r"[\d@:]|eyJ|[A-Za-z0-9_-]{20}|(?:Name|Dear|Mr|Ms|Dr|Prof|Miss|ustomer|atient|ontact|mployee)\b",
    re.I,
)


@dataclass(frozen=True)
class PIIMatch:
    """One piece of PII in a text: its ``category``, where it is (``start``/``end``,
    Python slice indices), the matched ``text`` and the ``confidence`` (0-1)."""

    category: str
    start: int
    end: int
    text: str
    confidence: float


class PIIDetector:
    """Finds PII in strings with a set of :class:`Recognizer` objects.

    Args:
        recognizers: the recognizers to run (default: ``DEFAULT_RECOGNIZERS``).
        categories: report only these categories (default: all).
        min_confidence: drop matches below this confidence.
    """

    def __init__(
        self,
        recognizers: Iterable[Recognizer] | None = None,
        *,
        categories: Iterable[str] | None = None,
        min_confidence: float = 0.5,
    ) -> None:
        chosen = tuple(DEFAULT_RECOGNIZERS if recognizers is None else recognizers)
        wanted = None if categories is None else frozenset(categories)
        self.recognizers = tuple(r for r in chosen if wanted is None or r.category in wanted)
        self.min_confidence = float(min_confidence)
        self._default = recognizers is None

    def detect(self, text: str) -> list[PIIMatch]:
        """The PII in ``text``, in order, without overlaps (the more confident, then the
        longer match wins)."""
        if not isinstance(text, str):
            raise TypeError(f"detect() takes a str, got {type(text).__name__}")
        if not text or (self._default and _MAYBE.search(text) is None):
            return []
        protected = [match.span() for match in _PROTECTED.finditer(text)]
        candidates: list[PIIMatch] = []
        for recognizer in self.recognizers:
            for match in recognizer.pattern.finditer(text):
                group = "value" if "value" in recognizer.pattern.groupindex else 0
                start, end = match.span(group)
                if start == end or any(a < end and start < b for a, b in protected):
                    continue
                confidence = recognizer.score(match[group])
                if confidence is not None and confidence >= self.min_confidence:
                    candidates.append(
                        PIIMatch(recognizer.category, start, end, match[group], confidence)
                    )
        candidates.sort(key=lambda m: (-m.confidence, m.start - m.end, m.start))
        chosen: list[PIIMatch] = []
        for candidate in candidates:
            if all(candidate.end <= kept.start or kept.end <= candidate.start for kept in chosen):
                chosen.append(candidate)
        return sorted(chosen, key=lambda m: m.start)

    def contains_pii(self, text: str) -> bool:
        """Whether ``text`` holds any PII."""
        return bool(self.detect(text))
