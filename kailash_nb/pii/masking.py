"""Replacing PII with markers, in a string or anywhere in nested data.

``PIIRedactor().redact_text("call +44 20 7946 0958")`` gives ``"call <redacted:phone>"``:
the surrounding text stays. :meth:`PIIRedactor.redact` walks dicts, lists, tuples and
sets (keys included) and never raises on odd data: past ``max_depth`` a value becomes
``DEPTH_MARKER``, a container longer than ``max_items`` keeps its first ``max_items``
entries and ends with a ``"<redacted:N more items>"`` marker, a cycle becomes
``CYCLE_MARKER``. A value under a secret-looking key (``password``, ``api_key`` ...,
:func:`kailash_nb.redaction.secret_key`) is replaced whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kailash_nb.pii.detection import PIIDetector, PIIMatch
from kailash_nb.redaction import REDACTED, secret_key

__all__ = ["CYCLE_MARKER", "DEPTH_MARKER", "PIIRedactor", "marker"]

DEPTH_MARKER = "<redacted:depth limit>"
_EMPTY = ("", REDACTED)
CYCLE_MARKER = "<redacted:cycle>"


def marker(category: str) -> str:
    """What a piece of PII of ``category`` becomes: ``<redacted:category>``."""
    return f"<redacted:{category}>"


class PIIRedactor:
    """Masks PII found by a :class:`PIIDetector`.

    Args:
        detector: the detector (default: every default recognizer).
        replace: turns a match into its replacement (default: :func:`marker` of its
            category); a pseudonymiser's ``replace`` keeps values joinable instead.
        max_depth: nesting depth past which a value becomes ``DEPTH_MARKER``.
        max_items: entries of one container that are looked at; the rest are
            replaced by one size marker.
    """

    def __init__(
        self,
        detector: PIIDetector | None = None,
        *,
        replace: Callable[[PIIMatch], str] | None = None,
        max_depth: int = 32,
        max_items: int = 10_000,
    ) -> None:
        if max_depth < 1 or max_items < 1:
            raise ValueError(f"max_depth and max_items must be >= 1, got {max_depth}, {max_items}")
        self.detector = detector if detector is not None else PIIDetector()
        self._replace = replace if replace is not None else (lambda match: marker(match.category))
        self.max_depth = max_depth
        self.max_items = max_items

    def redact_text(self, text: str) -> str:
        """``text`` with every piece of PII replaced."""
        matches = self.detector.detect(text)
        if not matches:
            return text
        pieces: list[str] = []
        position = 0
        for match in matches:
            pieces.append(text[position : match.start])
            pieces.append(self._replace(match))
            position = match.end
        pieces.append(text[position:])
        return "".join(pieces)

    def redact(self, value: Any) -> Any:
        """``value`` with PII replaced at any depth; containers are copied, other
        values (numbers, ``None``, objects) come back as they are unless a long integer
        reads as PII (a card number stored as an int)."""
        return self._walk(value, None, 0, set())

    def _walk(self, value: Any, key: Any, depth: int, path: set[int]) -> Any:
        if (
            isinstance(key, str)
            and secret_key(key)
            and value is not None
            and not (isinstance(value, str) and value in _EMPTY)
        ):
            return REDACTED
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, bytes):
            text = value.decode("utf-8", "replace")
            redacted = self.redact_text(text)
            return value if redacted == text else redacted
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**7:
            text = str(value)
            redacted = self.redact_text(text)
            return value if redacted == text else redacted
        if not isinstance(value, (Mapping, list, tuple, set, frozenset)):
            return value
        if depth >= self.max_depth:
            return DEPTH_MARKER
        if id(value) in path:
            return CYCLE_MARKER
        path.add(id(value))
        try:
            if isinstance(value, Mapping):
                result: dict[Any, Any] = {}
                for index, (name, item) in enumerate(value.items()):
                    if index == self.max_items:
                        result[_more_key(len(value) - index)] = _more(len(value) - index)
                        break
                    new_name = self.redact_text(name) if isinstance(name, str) else name
                    result[new_name] = self._walk(item, name, depth + 1, path)
                return result
            items = []
            for index, item in enumerate(value):
                if index == self.max_items:
                    items.append(_more(len(value) - index))
                    break
                items.append(self._walk(item, key, depth + 1, path))
            if isinstance(value, (set, frozenset)):
                return items
            return tuple(items) if isinstance(value, tuple) else items
        finally:
            path.discard(id(value))


def _more(count: int) -> str:
    return f"<redacted:{count} more items>"


def _more_key(count: int) -> str:
    return f"<{count} more keys>"
