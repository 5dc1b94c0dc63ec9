"""The compliance stream: log records as an append-only, hash-chained JSON Lines log.

Each line is one record with a ``chain`` object: ``seq`` (1, 2, 3 ... without gaps),
``prev`` (the previous line's hash, 64 zeros for the first) and ``hash``, the SHA-256
of ``prev`` and the record's canonical JSON (sorted keys, no ``chain``) -- the scheme
of the audit trail's records (:mod:`kailash_nb.store.audit_records`), for a file
instead of the run store. Editing a line, deleting one or reordering them breaks the
chain at that line, which :func:`verify_compliance_log` reports::

    result = verify_compliance_log(Path("compliance.jsonl").read_text().splitlines())
    assert result.ok, result.message

Cutting lines off the end is not detectable from the file alone: keep the last hash
elsewhere (a checkpoint) when that matters.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

__all__ = [
    "GENESIS_HASH",
    "ComplianceChain",
    "ComplianceChainError",
    "ComplianceVerifyResult",
    "verify_compliance_log",
]

#: ``prev`` of a stream's first record.
GENESIS_HASH = "0" * 64


def _canonical(payload: dict[str, Any]) -> str:
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def _link(prev: str, payload: dict[str, Any]) -> str:
    return hashlib.sha256(f"{prev}\n{_canonical(payload)}".encode()).hexdigest()


class ComplianceChain:
    """Appends records to a chained JSON Lines stream, one line each.

    Args:
        sink: a path (opened for appending; an existing file's chain is continued) or
            a text stream; ``None`` keeps no stream and only chains (the logger then
            writes the chained records to its own output).

    Raises:
        ComplianceChainError: the file's last line is not a chained record.
    """

    def __init__(self, sink: str | os.PathLike[str] | IO[str] | None = None) -> None:
        self._lock = threading.Lock()
        self._owned = False
        self.seq = 0
        self.last_hash = GENESIS_HASH
        self._stream: IO[str] | None
        if sink is None or hasattr(sink, "write"):
            self._stream = sink  # type: ignore[assignment]
            return
        path = os.fspath(sink)
        if os.path.exists(path):
            self.seq, self.last_hash = _tail(path)
        self._stream = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._owned = True

    def chain(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``payload`` with its ``chain`` object, appended to the stream (if any)."""
        with self._lock:
            digest = _link(self.last_hash, payload)
            self.seq += 1
            chained = {
                **payload,
                "chain": {"seq": self.seq, "prev": self.last_hash, "hash": digest},
            }
            self.last_hash = digest
            if self._stream is not None:
                self._stream.write(_canonical(chained) + "\n")
                self._stream.flush()
            return chained

    def close(self) -> None:
        """Close the file this chain opened (a stream passed in is left open)."""
        if self._owned and self._stream is not None:
            self._stream.close()
            self._stream = None


class ComplianceChainError(ValueError):
    """A compliance file cannot be continued: its last line is not a chained record."""


def _tail(path: str) -> tuple[int, str]:
    last = ""
    with open(path, encoding="utf-8") as existing:
        for line in existing:
            if line.strip():
                last = line
    if not last:
        return 0, GENESIS_HASH
    try:
        chain = json.loads(last)["chain"]
        return int(chain["seq"]), str(chain["hash"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ComplianceChainError(
            f"{path}: the last line is not a chained compliance record ({exc}); "
            "verify the file with verify_compliance_log() and start a new one"
        ) from None


@dataclass(frozen=True)
class ComplianceVerifyResult:
    """What :func:`verify_compliance_log` found: ``ok``, the number of ``records``
    checked, and for a broken chain the line (1-based) and the reason."""

    ok: bool
    records: int
    line: int | None = None
    reason: str | None = None

    def __bool__(self) -> bool:
        return self.ok

    @property
    def message(self) -> str:
        """One sentence for people."""
        if self.ok:
            return f"compliance log intact: {self.records} records"
        return f"compliance log broken at line {self.line}: {self.reason}"


def verify_compliance_log(lines: Iterable[str]) -> ComplianceVerifyResult:
    """Check a compliance stream's chain: sequence numbers without gaps, each ``prev``
    the hash before it, each ``hash`` the digest of its record."""
    prev, expected_seq, count = GENESIS_HASH, 1, 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            chain = record.pop("chain")
            seq, link, digest = chain["seq"], chain["prev"], chain["hash"]
        except (ValueError, KeyError, TypeError, AttributeError):
            return ComplianceVerifyResult(False, count, number, "not a chained record")
        if seq != expected_seq:
            return ComplianceVerifyResult(
                False, count, number, f"sequence number {seq}, expected {expected_seq}"
            )
        if link != prev:
            return ComplianceVerifyResult(False, count, number, "prev is not the previous hash")
        if _link(prev, record) != digest:
            return ComplianceVerifyResult(False, count, number, "record does not match its hash")
        prev, expected_seq, count = digest, expected_seq + 1, count + 1
    return ComplianceVerifyResult(True, count)
