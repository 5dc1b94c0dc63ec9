"""A reference participant service: the HTTP participant protocol over a SQLite ledger.

``ParticipantService`` is for examples and tests, not production: a small Tornado
application that answers ``POST /prepare|commit|abort|execute|compensate`` (the
protocol ``kailash_nb.nodes.transaction.HttpParticipant`` speaks) and records every
effect in a SQLite "ledger" with a UNIQUE ``(transaction_id, step_id, operation)``
constraint, so a duplicated effect is an error to see, never a silent double. It
serves on a free ``127.0.0.1`` port from a background thread::

    with ParticipantService("payments") as payments:
        spec = payments.participant_spec()      # kind "http", endpoint, private network
        ...                                     # run transactions against it
        payments.entries()                      # what took effect, in order

What it does, per ``(transaction_id, step_id)`` (2PC calls one step with prepare,
commit and abort; a saga calls one step with execute and compensate):

- every operation is idempotent: asked again, it answers as the first time and
  records nothing new (the answer carries ``"duplicate": true``);
- ``prepare`` records the step and votes ``{"vote": "prepared"}`` (or ``"abort"``
  when told to); once the step is aborted, prepared or not, it votes abort without
  recording (presumed abort, DTM-06);
- ``commit`` needs a prepared, unaborted step, else 409; ``abort`` of a committed
  step is 409, of an unprepared step leaves a tombstone;
- ``execute`` answers ``{"result": {...}}``; ``compensate`` of a step that never ran
  leaves a tombstone and a later ``execute`` of that step answers 409 (DTM-14), as
  does any ``execute`` of a compensated step.

Failures can be injected (:class:`FailureInjection`, ``service.faults``): answer a
status instead of doing the operation (``fail``), vote abort, stall before
answering, or answer a canned body (garbage, for DTM-07).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import tornado.web

from kailash_nb._loopback_server import LoopbackServer
from kailash_nb.transactions.participants import OPERATIONS, ParticipantSpec

__all__ = ["FailureInjection", "ParticipantService"]

_MAX_BODY_BYTES = 1 << 20
_MAX_ID_CHARACTERS = 256
_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
    transaction_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    context TEXT NOT NULL,
    result TEXT,
    recorded_at REAL NOT NULL,
    UNIQUE (transaction_id, step_id, operation)
)
"""


@dataclasses.dataclass(frozen=True)
class _Canned:
    status: int
    body: str
    content_type: str
    times: int | None  # None: every call


class FailureInjection:
    """What a :class:`ParticipantService` does instead of its normal answer, by
    operation and step id. Thread-safe: change it while the service runs.

    Args:
        fail_prepare: step ids whose ``prepare`` is refused with 422 (permanent).
        fail_execute: step ids whose ``execute`` is refused with 422 (permanent).
        vote_abort: step ids whose ``prepare`` votes ``"abort"`` (recorded).
    """

    def __init__(
        self,
        *,
        fail_prepare: Iterable[str] = (),
        fail_execute: Iterable[str] = (),
        vote_abort: Iterable[str] = (),
    ) -> None:
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, str | None], _Canned] = {}
        self._stalls: dict[tuple[str, str | None], float] = {}
        self._abort_votes: set[str] = set(vote_abort)
        for step_id in fail_prepare:
            self.fail("prepare", step_id, status=422)
        for step_id in fail_execute:
            self.fail("execute", step_id, status=422)

    def fail(
        self, operation: str, step_id: str | None, *, times: int | None = None, status: int = 503
    ) -> None:
        """Answer ``status`` with ``{"error": "injected failure"}`` to the next ``times``
        calls of ``operation`` for ``step_id`` (``None``: any step; ``times=None``: every
        call), doing and recording nothing. A 5xx is transient to the caller, a 4xx
        other than 408/429 permanent."""
        body = json.dumps({"error": f"injected failure ({operation} answered {status})"})
        self.answer(operation, step_id, status, body, times=times)

    def answer(
        self,
        operation: str,
        step_id: str | None,
        status: int,
        body: str,
        *,
        content_type: str = "application/json",
        times: int | None = None,
    ) -> None:
        """Answer ``status`` with the raw ``body`` (a garbage answer, say) to the next
        ``times`` calls of ``operation`` for ``step_id``, doing and recording nothing."""
        _check_operation(operation)
        if times is not None and times < 1:
            raise ValueError(f"times must be 1 or more (or None for every call), got {times!r}")
        with self._lock:
            self._answers[operation, step_id] = _Canned(status, body, content_type, times)

    def abort_vote(self, step_id: str) -> None:
        """Vote ``"abort"`` on ``prepare`` of ``step_id`` (recorded like a real vote)."""
        with self._lock:
            self._abort_votes.add(step_id)

    def stall(self, operation: str, step_id: str | None, seconds: float) -> None:
        """Wait ``seconds`` before handling ``operation`` for ``step_id`` (``None``: any
        step). The call still takes effect afterwards, as a slow participant's does."""
        _check_operation(operation)
        with self._lock:
            self._stalls[operation, step_id] = seconds

    def clear(self) -> None:
        """Drop every injected failure."""
        with self._lock:
            self._answers.clear()
            self._stalls.clear()
            self._abort_votes.clear()

    def _stall_for(self, operation: str, step_id: str) -> float:
        with self._lock:
            return self._stalls.get((operation, step_id), self._stalls.get((operation, None), 0.0))

    def _take_answer(self, operation: str, step_id: str) -> _Canned | None:
        with self._lock:
            for key in ((operation, step_id), (operation, None)):
                canned = self._answers.get(key)
                if canned is None:
                    continue
                if canned.times == 1:
                    del self._answers[key]
                elif canned.times is not None:
                    self._answers[key] = dataclasses.replace(canned, times=canned.times - 1)
                return canned
            return None

    def _votes_abort(self, step_id: str) -> bool:
        with self._lock:
            return step_id in self._abort_votes


def _check_operation(operation: str) -> None:
    if operation not in OPERATIONS:
        raise ValueError(f"unknown operation {operation!r}; the operations are {OPERATIONS}")


class _Ledger:
    """The service's effects in SQLite; each operation is one write transaction."""

    def __init__(self, path: Path, service_name: str) -> None:
        self.path = path
        self._service_name = service_name
        with self._connection() as db:
            db.execute(_SCHEMA)

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        # A connection per use: the ledger is read from test threads while the
        # service thread writes, and a reference service need not be fast.
        db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        try:
            yield db
        finally:
            db.close()

    def apply(self, operation: str, call: dict[str, Any], *, vote_abort: bool) -> tuple[int, Any]:
        """Do ``operation`` for ``call`` once; the HTTP status and JSON answer."""
        with self._connection() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                answer = self._decide(db, operation, call, vote_abort)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return answer

    def _decide(
        self, db: sqlite3.Connection, operation: str, call: dict[str, Any], vote_abort: bool
    ) -> tuple[int, Any]:
        transaction_id, step_id = call["transaction_id"], call["step_id"]
        done = {
            row[0]: (row[1], row[2])
            for row in db.execute(
                "SELECT operation, outcome, result FROM ledger "
                "WHERE transaction_id = ? AND step_id = ?",
                (transaction_id, step_id),
            )
        }
        step = f"step {step_id!r} of transaction {transaction_id!r}"
        # An undone step stays undone, even for a repeat of the call that did it.
        if operation == "prepare" and "abort" in done:
            return 200, {"vote": "abort", "reason": f"{step} was aborted"}
        if operation == "execute" and "compensate" in done:
            return 409, {
                "error": f"refused: {step} was compensated ({done['compensate'][0]}); "
                "a late execute never runs (DTM-14)"
            }
        if operation in done:
            outcome, result = done[operation]
            if operation == "prepare":
                return 200, {"vote": _vote(outcome), "duplicate": True}
            if operation == "execute":
                return 200, {"result": json.loads(result), "duplicate": True}
            return 200, {"status": outcome, "duplicate": True}

        if operation == "prepare":
            outcome = "vote_abort" if vote_abort else "prepared"
            self._record(db, operation, call, outcome)
            return 200, {"vote": _vote(outcome)}
        if operation == "commit":
            if done.get("prepare", ("",))[0] != "prepared" or "abort" in done:
                why = "was aborted" if "abort" in done else "is not prepared"
                return 409, {"error": f"cannot commit: {step} {why}"}
            self._record(db, operation, call, "committed")
            return 200, {"status": "committed"}
        if operation == "abort":
            if "commit" in done:
                return 409, {"error": f"cannot abort: {step} is committed"}
            outcome = "aborted" if "prepare" in done else "tombstone"
            self._record(db, operation, call, outcome)
            return 200, {"status": outcome}
        if operation == "execute":
            result = {"service": self._service_name, "step_id": step_id, "context": call["context"]}
            self._record(db, operation, call, "executed", result)
            return 200, {"result": result}
        outcome = "compensated" if "execute" in done else "tombstone"
        self._record(db, operation, call, outcome)
        return 200, {"status": outcome}

    @staticmethod
    def _record(
        db: sqlite3.Connection,
        operation: str,
        call: dict[str, Any],
        outcome: str,
        result: Any = None,
    ) -> None:
        db.execute(
            "INSERT INTO ledger (transaction_id, step_id, operation, participant_id, outcome, "
            "context, result, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                call["transaction_id"],
                call["step_id"],
                operation,
                call["participant_id"],
                outcome,
                json.dumps(call["context"]),
                None if result is None else json.dumps(result),
                time.time(),
            ),
        )

    def entries(self, transaction_id: str | None = None) -> list[dict[str, Any]]:
        """The recorded effects in the order they happened."""
        query = (
            "SELECT sequence, transaction_id, step_id, operation, participant_id, outcome, "
            "context, result, recorded_at FROM ledger"
        )
        arguments: tuple[str, ...] = ()
        if transaction_id is not None:
            query += " WHERE transaction_id = ?"
            arguments = (transaction_id,)
        with self._connection() as db:
            rows = db.execute(query + " ORDER BY sequence", arguments).fetchall()
        names = ("sequence", "transaction_id", "step_id", "operation", "participant_id", "outcome")
        return [
            {
                **dict(zip(names, row[:6], strict=True)),
                "context": json.loads(row[6]),
                "result": None if row[7] is None else json.loads(row[7]),
                "recorded_at": row[8],
            }
            for row in rows
        ]


def _vote(outcome: str) -> str:
    return "prepared" if outcome == "prepared" else "abort"


def _call_problem(call: Any) -> str | None:
    """What is wrong with a request body, or ``None``."""
    if not isinstance(call, dict):
        return "the body must be a JSON object (StepCall.payload())"
    for name in ("transaction_id", "step_id", "participant_id"):
        value = call.get(name)
        if not isinstance(value, str) or not value or len(value) > _MAX_ID_CHARACTERS:
            return f"{name!r} must be a string of 1-{_MAX_ID_CHARACTERS} characters"
    if not isinstance(call.get("context"), dict):
        return "'context' must be a JSON object"
    attempt = call.get("attempt")
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        return "'attempt' must be a whole number, 1 or more"
    return None


class _OperationHandler(tornado.web.RequestHandler):
    """``POST /<operation>``: one participant operation."""

    def initialize(self, service: ParticipantService) -> None:
        self.service = service

    async def post(self, operation: str) -> None:
        try:
            call = json.loads(self.request.body)
        except ValueError:
            call = None
        problem = _call_problem(call)
        if problem is not None:
            self._answer(400, {"error": problem})
            return
        service = self.service
        step_id = call["step_id"]
        stall = service.faults._stall_for(operation, step_id)
        if stall > 0 and await service._stopping_within(stall):
            self._answer(503, {"error": "the service is stopping"})
            return
        canned = service.faults._take_answer(operation, step_id)
        if canned is not None:
            # Noted before answering, so a caller that got its answer finds its call.
            service._note_call(operation, call, canned.status)
            self.set_status(canned.status)
            self.set_header("Content-Type", canned.content_type)
            self.finish(canned.body or None)
            return
        vote_abort = operation == "prepare" and service.faults._votes_abort(step_id)
        status, answer = service._ledger.apply(operation, call, vote_abort=vote_abort)
        service._note_call(operation, call, status)
        self._answer(status, answer)

    def _answer(self, status: int, answer: Any) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(answer))


class ParticipantService:
    """A reference HTTP participant for examples and tests (see the module docstring),
    not a production service.

    Args:
        name: the service's name (in results and the default participant id).
        ledger_path: the SQLite ledger file, created if missing and kept across
            restarts (default: a file in a temporary directory removed with this
            object).
        fail_prepare, fail_execute, vote_abort: step ids to fail or vote abort; see
            :class:`FailureInjection`, which ``faults`` holds.

    ``start()`` binds a free port on 127.0.0.1 and serves from a daemon thread;
    ``stop()`` ends it. As a context manager it starts and stops.
    """

    def __init__(
        self,
        name: str = "participant",
        ledger_path: str | Path | None = None,
        *,
        fail_prepare: Iterable[str] = (),
        fail_execute: Iterable[str] = (),
        vote_abort: Iterable[str] = (),
    ) -> None:
        self.name = name
        if ledger_path is None:
            self._temporary = tempfile.TemporaryDirectory(prefix="kailash_nb_participant_")
            ledger_path = Path(self._temporary.name) / f"{name}.sqlite3"
        self._ledger = _Ledger(Path(ledger_path), name)
        self.faults = FailureInjection(
            fail_prepare=fail_prepare, fail_execute=fail_execute, vote_abort=vote_abort
        )
        self._calls: list[dict[str, Any]] = []
        self._calls_lock = threading.Lock()
        self._stopping: asyncio.Event | None = None
        self._server = LoopbackServer(
            tornado.web.Application(
                [
                    (
                        r"/(prepare|commit|abort|execute|compensate)",
                        _OperationHandler,
                        {"service": self},
                    )
                ],
                log_function=lambda handler: None,
            ),
            thread_name=f"participant-service-{name}",
            max_body_size=_MAX_BODY_BYTES,
            on_start=self._make_stopping,
            on_stop=self._set_stopping,
        )

    @property
    def port(self) -> int | None:
        """The port listened on, while running."""
        return self._server.port

    @property
    def ledger_path(self) -> Path:
        """The SQLite ledger file."""
        return self._ledger.path

    @property
    def endpoint(self) -> str:
        """The base URL, ``http://127.0.0.1:<port>``.

        Raises:
            RuntimeError: the service was never started.
        """
        if self.port is None:
            raise RuntimeError(f"participant service {self.name!r} is not started; call start()")
        return f"http://127.0.0.1:{self.port}"

    def participant_spec(
        self,
        participant_id: str | None = None,
        *,
        supports_2pc: bool = True,
        supports_saga: bool = True,
        **options: Any,
    ) -> ParticipantSpec:
        """An ``"http"`` participant spec for this service (``allow_private_network``
        set, since it listens on loopback); ``options`` add to or override it."""
        return ParticipantSpec(
            participant_id or self.name,
            "http",
            supports_2pc=supports_2pc,
            supports_saga=supports_saga,
            options={"endpoint": self.endpoint, "allow_private_network": True, **options},
        )

    def entries(self, transaction_id: str | None = None) -> list[dict[str, Any]]:
        """The ledger: every effect (``sequence``, ``transaction_id``, ``step_id``,
        ``operation``, ``participant_id``, ``outcome``, ``context``, ``result``,
        ``recorded_at``) in order, optionally of one transaction. ``outcome`` is
        ``prepared``/``vote_abort``, ``committed``, ``aborted``/``tombstone``,
        ``executed``, ``compensated``/``tombstone``."""
        return self._ledger.entries(transaction_id)

    def calls(self) -> list[dict[str, Any]]:
        """Every request answered since start (``operation``, ``transaction_id``,
        ``step_id``, ``attempt``, ``status``), retries and duplicates included."""
        with self._calls_lock:
            return list(self._calls)

    def start(self) -> ParticipantService:
        """Listen on a free 127.0.0.1 port and serve from a background thread.

        The socket listens before this returns, so calls may be made at once.

        Raises:
            RuntimeError: it is already running.
        """
        if self._server.running:
            raise RuntimeError(f"participant service {self.name!r} is already running")
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving: stalled calls are answered 503, connections closed, the
        thread ended. The ledger stays readable. Stopping a stopped service does nothing."""
        self._server.stop()
        self._stopping = None

    def _make_stopping(self) -> None:
        self._stopping = asyncio.Event()

    def _set_stopping(self) -> None:
        assert self._stopping is not None
        self._stopping.set()

    async def _stopping_within(self, seconds: float) -> bool:
        """Wait ``seconds``; True if the service began stopping meanwhile."""
        assert self._stopping is not None
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except asyncio.TimeoutError:
            return False
        return True

    def _note_call(self, operation: str, call: dict[str, Any], status: int) -> None:
        with self._calls_lock:
            self._calls.append(
                {
                    "operation": operation,
                    "transaction_id": call["transaction_id"],
                    "step_id": call["step_id"],
                    "attempt": call["attempt"],
                    "status": status,
                }
            )

    def __enter__(self) -> ParticipantService:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.endpoint if self._server.running else "stopped"
        return f"ParticipantService({self.name!r}, {where})"
