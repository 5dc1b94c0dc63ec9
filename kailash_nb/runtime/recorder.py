"""``RunRecorder``: writes runs from the event bus to the store, in batches.

It subscribes to run events with their node timelines (no per-node events), queues
them, and a writer thread stores them in batches, one transaction per batch, so a
run costs the engine a few microseconds rather than a database round trip. A
batch is atomic: after a crash the store holds whole batches only, and a run whose
start was written but not its end is marked ``interrupted`` when the store is next
opened.

One bad record never costs another: when a batch cannot be written, each of its runs
is written again in a transaction of its own, and a run whose rows still fail is
written bare (status, times and the reason, without parameters, timeline or results),
so it never stays ``running``; only what cannot be written at all is logged and
reported by ``flush()``.

The gateway also hands it :class:`GatewayRunNote` copies of its runs (owner, status,
results, error) through :meth:`RunRecorder.record_gateway_run`; they are written to
``kailash_nb_gateway_runs`` in the same batches, so another worker process reads a run
at most ``interval`` (0.1 s) after it started or ended here.
"""

from __future__ import annotations

import atexit
import collections
import functools
import json
import logging
import math
import re
import socket
import threading
import weakref
from typing import Any

import sqlalchemy as sa

from kailash_nb._json_text import json_text, plain
from kailash_nb.redaction import looks_secret
from kailash_nb.run_status import ENGINE_FINAL_STATES
from kailash_nb.runtime.events import EventBus, RunEvent, Subscription
from kailash_nb.sdk_exceptions import RuntimeExecutionError
from kailash_nb.store.run_history import GatewayRunNote, RunStore, process_token, results_json
from kailash_nb.store.schema import gateway_runs, runs

__all__ = ["SERVER_BATCH_SIZE", "RunRecorder"]

#: ``batch_size`` for recorders in a server: runs may finish on the event loop, which must
#: never wait for a database write, so batches are left to the ticker thread (every
#: ``interval``) unless this many events pile up (a stalled ticker; memory stays bounded).
SERVER_BATCH_SIZE = 65_536

logger = logging.getLogger(__name__)

_MAX_PARAMETER_CHARS = 10_000
_UNCOMPARABLE = object()
# Plain JSON that mentions none of these needs no masking walk (the common case).
_SECRET_HINT = re.compile(
    r"passw|secret|token|api_?key|credential|_key|connection_string|dsn", re.IGNORECASE
)


class RunRecorder:
    """Record every run published on ``bus`` into ``store``.

    Finished runs are collected in memory and written ``batch_size`` at a time by
    the thread that finishes the run filling the batch; a ticker thread writes
    whatever waits longer than ``interval`` seconds. Writing in the producing
    thread keeps the interpreter lock with one thread at a time, which is what
    makes recording cheap. ``flush()`` writes everything pending and raises
    ``RuntimeExecutionError`` if a batch could not be written since the last flush;
    ``close()`` unsubscribes, flushes and stops the ticker (also at interpreter exit).
    """

    def __init__(
        self, store: RunStore, bus: EventBus, *, batch_size: int = 2048, interval: float = 0.1
    ) -> None:
        self.store = store
        self._batch_size = batch_size
        self._interval = interval
        self._pending: collections.deque[RunEvent] = collections.deque()
        self._notes: collections.deque[GatewayRunNote] = collections.deque()
        self._write_lock = threading.Lock()
        self._error: Exception | None = None
        self._last_parameters: tuple[Any, Any, str | None] | None = None
        #: Gateway runs whose first note was held back one batch for their run event.
        self._held: set[str] = set()
        self._host = socket.gethostname()
        self._owner = process_token()
        self._subscription: Subscription | None = bus.subscribe(
            self._collect, nodes=False, runs=True, timeline=True
        )
        self._stopping = threading.Event()
        self._ticker = threading.Thread(
            target=self._tick, name="kailash-nb-run-recorder", daemon=True
        )
        self._ticker.start()
        self._finalizer = weakref.finalize(self, _stop_recorder, self._stopping, self._ticker)
        atexit.register(self.close)

    def flush(self) -> None:
        """Write every run recorded so far.

        Raises:
            RuntimeExecutionError: a batch could not be written since the last flush.
        """
        self._write_pending()
        error, self._error = self._error, None
        if error is not None:
            raise RuntimeExecutionError(
                f"run history could not be written to the store: {type(error).__name__}: {error}"
            ) from error

    def close(self) -> None:
        """Stop recording: unsubscribe, write what is pending, stop the ticker."""
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        self._finalizer()
        self._write_pending()
        atexit.unregister(self.close)

    def record_gateway_run(self, note: GatewayRunNote) -> None:
        """Queue a gateway run's owner and state for the next batch (never blocks).

        The first note of a run (status ``running``, no ``finished_at``) inserts its
        row; later notes update it.
        """
        notes = self._notes
        notes.append(note)
        if len(notes) >= self._batch_size:
            self._write_pending(hold=True)

    def _collect(self, event: RunEvent) -> None:
        pending = self._pending
        pending.append(event)
        if len(pending) >= self._batch_size:
            self._write_pending(hold=True)

    def _tick(self) -> None:
        while not self._stopping.wait(self._interval):
            if self._pending or self._notes:
                self._write_pending(hold=True)

    def _write_pending(self, hold: bool = False) -> None:
        with self._write_lock:
            pending = self._pending
            # deque appends and pops are atomic: producers never wait for a writer.
            batch = [pending.popleft() for _ in range(len(pending))]
            queued = self._notes
            notes = [queued.popleft() for _ in range(len(queued))]
            if hold:
                notes = self._hold_unstarted(batch, notes)
            if not batch and not notes:
                return
            try:
                rows = self._rows(batch, notes)
            except Exception as exc:
                # A bug in preparing rows must not stop the ticker thread (every later
                # run would wait for a full batch); the loss is reported by flush().
                logger.exception("could not prepare %d run events for the store", len(batch))
                self._error = exc
                return
            try:
                self._write(rows)
            except Exception as exc:
                # The runs already returned to their callers: write them one by one,
                # so whatever refused the batch costs only its own run.
                logger.warning(
                    "could not record a batch of %d runs at once (%s: %s); writing them one by one",
                    len(rows.run_ids()),
                    type(exc).__name__,
                    exc,
                )
                self._write_each(rows)

    def _hold_unstarted(
        self, batch: list[RunEvent], notes: list[GatewayRunNote]
    ) -> list[GatewayRunNote]:
        """The notes to write now. A new gateway run's note is queued microseconds
        before its ``started`` run event; when a batch falls between the two, the run's
        notes go back to the queue (once) so its gateway row is stored with, never
        before, the run row naming its owner process, which crash recovery reads: a
        process killed in between would otherwise leave the run ``running`` for good."""
        started = {event.run_id for event in batch if event.state == "started"}
        waiting = {
            note.run_id
            for note in notes
            if note.status == "running"
            and note.finished_at is None
            and note.run_id not in started
            and note.run_id not in self._held
        }
        self._held = waiting
        if not waiting:
            return notes
        self._notes.extendleft(reversed([note for note in notes if note.run_id in waiting]))
        return [note for note in notes if note.run_id not in waiting]

    def _rows(self, batch: list[RunEvent], notes: list[GatewayRunNote]) -> _Rows:
        started: dict[str, RunEvent] = {}
        finished: dict[str, RunEvent] = {}
        for event in batch:
            (started if event.state == "started" else finished)[event.run_id] = event
        rows = _Rows()
        for run_id, end in finished.items():
            status = end.state if end.state in ENGINE_FINAL_STATES else "failed"
            timeline = _encode_timeline(end.timeline)
            start = started.pop(run_id, None)
            if start is None:
                rows.ended_runs.append(
                    (status, end.timestamp, end.duration, end.error, timeline, run_id)
                )
            else:
                rows.new_runs.append(self._run_row(start, status, end, timeline))
        rows.new_runs.extend(
            self._run_row(start, "running", None, None) for start in started.values()
        )
        rows.gateway_inserts, rows.gateway_updates = _gateway_run_rows(notes)
        return rows

    def _write(self, rows: _Rows) -> None:
        with self.store.engine.begin() as connection:
            rows.write(connection)

    def _write_each(self, rows: _Rows) -> None:
        for run_id, own in rows.by_run():
            try:
                self._write(own)
                continue
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
            try:
                self._write(own.bare(f"the run's details could not be recorded ({reason:.500})"))
                logger.error("run %s recorded without its details: %s", run_id, reason)
            except Exception as exc:
                logger.exception("could not record run %s", run_id)
                self._error = exc

    def _parameters_text(self, parameters: Any) -> str | None:
        # A loop usually passes the same parameters object run after run: while it
        # still equals the snapshot taken when it was encoded, reuse the text.
        last = self._last_parameters
        if last is not None and last[0] is parameters and _equal(parameters, last[1]):
            return last[2]
        text = _portable(parameters)
        if text is not None and last is not None and last[0] is parameters:
            self._last_parameters = (parameters, json.loads(text), text)
        else:
            self._last_parameters = (parameters, _UNCOMPARABLE, text)
        return text

    def _run_row(
        self, start: RunEvent, status: str, end: RunEvent | None, timeline: str | None
    ) -> tuple:
        return (
            start.run_id,
            int(start.timestamp * 1_000_000),
            start.workflow_name[:256],
            start.workflow_id,
            self._parameters_text(start.parameters),
            status,
            start.timestamp,
            end.timestamp if end else None,
            end.duration if end else None,
            end.error if end else None,
            timeline,
            self._host,
            self._owner,
        )


# Rows are written through the driver's executemany: the recorder's writes must
# cost a few microseconds per row, which SQLAlchemy's per-row processing does not.
_RUN_COLUMNS = (
    "run_id",
    "run_seq",
    "workflow_name",
    "workflow_id",
    "parameters",
    "status",
    "started_at",
    "finished_at",
    "duration",
    "error",
    "node_events",
    "owner_host",
    "owner_process",
)
_END_COLUMNS = ("status", "finished_at", "duration", "error", "node_events", "target_run_id")
_STATEMENTS: dict[str, dict[str, str]] = {}


class _Rows:
    """The rows one batch writes, by statement; each row names its run."""

    def __init__(self) -> None:
        self.new_runs: list[tuple] = []
        self.ended_runs: list[tuple] = []
        self.gateway_inserts: list[tuple] = []
        self.gateway_updates: list[tuple] = []

    def write(self, connection: Any) -> None:
        """Execute every row on ``connection`` (inside the caller's transaction)."""
        bulk = _bulk_statements(connection.dialect)
        if self.new_runs:
            _execute_many(connection, bulk["runs"], self.new_runs, _RUN_COLUMNS)
        if self.ended_runs:
            _execute_many(connection, bulk["end"], self.ended_runs, _END_COLUMNS)
        if self.gateway_inserts:
            _execute_many(
                connection, bulk["gateway_runs"], self.gateway_inserts, _GATEWAY_RUN_COLUMNS
            )
        if self.gateway_updates:
            _execute_many(
                connection, bulk["gateway_end"], self.gateway_updates, _GATEWAY_END_COLUMNS
            )

    def run_ids(self) -> list[str]:
        """The runs these rows belong to, each once, in order."""
        return list(dict.fromkeys(run_id for run_id, _ in self._tagged()))

    def by_run(self) -> list[tuple[str, _Rows]]:
        """``(run_id, rows of that run only)`` for every run."""
        split: dict[str, _Rows] = {}
        for run_id, (kind, row) in self._tagged():
            getattr(split.setdefault(run_id, _Rows()), kind).append(row)
        return list(split.items())

    def bare(self, reason: str) -> _Rows:
        """These rows with ``reason`` as their error and without parameters, timeline
        or results: what is left to write when the full rows fail (the status and
        times still say how the run ended)."""
        reason = reason.replace("\x00", "")  # the one character no text column takes
        reason_json = json.dumps({"message": reason})
        bare = _Rows()
        for row in self.new_runs:
            run = dict(zip(_RUN_COLUMNS, row, strict=True))
            run.update(parameters=None, node_events=None, error=reason)
            bare.new_runs.append(tuple(run[column] for column in _RUN_COLUMNS))
        for status, finished_at, duration, _, _, run_id in self.ended_runs:
            bare.ended_runs.append((status, finished_at, duration, reason, None, run_id))
        for row in self.gateway_inserts:
            run = dict(zip(_GATEWAY_RUN_COLUMNS, row, strict=True))
            run.update(results=None, error=reason_json)
            bare.gateway_inserts.append(tuple(run[column] for column in _GATEWAY_RUN_COLUMNS))
        for status, _, size, _, finished_at, run_id in self.gateway_updates:
            bare.gateway_updates.append((status, None, size, reason_json, finished_at, run_id))
        return bare

    def _tagged(self) -> list[tuple[str, tuple[str, tuple]]]:
        return [
            *((row[0], ("new_runs", row)) for row in self.new_runs),
            *((row[-1], ("ended_runs", row)) for row in self.ended_runs),
            *((row[0], ("gateway_inserts", row)) for row in self.gateway_inserts),
            *((row[-1], ("gateway_updates", row)) for row in self.gateway_updates),
        ]


def _gateway_run_rows(notes: list[GatewayRunNote]) -> tuple[list[tuple], list[tuple]]:
    """``(inserts, updates)``: insert the runs whose first note is in ``notes``, update
    the others, each with its latest note (notes of one run arrive in order)."""
    latest: dict[str, GatewayRunNote] = {}
    new: set[str] = set()
    for note in notes:
        latest[note.run_id] = note
        if note.finished_at is None and note.status == "running":
            new.add(note.run_id)
    inserts, updates = [], []
    for run_id, note in latest.items():
        text, size = results_json(note.results)
        error = None if note.error is None else json_text(note.error)
        if run_id in new:
            inserts.append(
                (
                    run_id,
                    note.tenant_id[:256],
                    note.subject[:256],
                    note.workflow_name[:256],
                    note.status[:16],
                    text,
                    size,
                    error,
                    note.created_at,
                    note.finished_at,
                )
            )
        else:
            updates.append((note.status[:16], text, size, error, note.finished_at, run_id))
    return inserts, updates


_GATEWAY_RUN_COLUMNS = (
    "run_id",
    "tenant_id",
    "subject",
    "workflow_name",
    "status",
    "results",
    "results_size",
    "error",
    "created_at",
    "finished_at",
)
_GATEWAY_END_COLUMNS = (
    "status",
    "results",
    "results_size",
    "error",
    "finished_at",
    "target_run_id",
)


def _bulk_statements(dialect: Any) -> dict[str, str]:
    statements = _STATEMENTS.get(dialect.name)
    if statements is None:
        end = (
            runs.update()
            .where(runs.c.run_id == sa.bindparam("target_run_id"))
            .values(
                status=sa.bindparam("status"),
                finished_at=sa.bindparam("finished_at"),
                duration=sa.bindparam("duration"),
                error=sa.bindparam("error"),
                node_events=sa.bindparam("node_events"),
            )
        )
        gateway_end = (
            gateway_runs.update()
            .where(gateway_runs.c.run_id == sa.bindparam("target_run_id"))
            .values(
                status=sa.bindparam("status"),
                results=sa.bindparam("results"),
                results_size=sa.bindparam("results_size"),
                error=sa.bindparam("error"),
                finished_at=sa.bindparam("finished_at"),
            )
        )
        statements = _STATEMENTS[dialect.name] = {
            "runs": _compiled(runs.insert(), dialect, _RUN_COLUMNS),
            "end": _compiled(end, dialect, _END_COLUMNS),
            "gateway_runs": _compiled(gateway_runs.insert(), dialect, _GATEWAY_RUN_COLUMNS),
            "gateway_end": _compiled(gateway_end, dialect, _GATEWAY_END_COLUMNS),
        }
    return statements


def _compiled(statement: Any, dialect: Any, columns: tuple[str, ...]) -> Any:
    compiled = statement.compile(dialect=dialect, column_keys=list(columns))
    if dialect.positional and tuple(compiled.positiontup) != columns:
        raise RuntimeError(f"unexpected parameter order {compiled.positiontup} for {columns}")
    return str(compiled)


def _execute_many(connection: Any, sql: str, rows: list[tuple], columns: tuple[str, ...]) -> None:
    if not connection.dialect.positional:
        rows = [dict(zip(columns, row, strict=True)) for row in rows]
    cursor = connection.connection.cursor()
    try:
        cursor.executemany(sql, rows)
    finally:
        cursor.close()


def _encode_timeline(timeline: tuple | None) -> str | None:
    """JSON of a run's node events, times as integer microseconds:
    ``[[node_id, state, start_us, end_us, error, iteration], ...]``.

    Entries with plain values are formatted directly, which is several times
    faster than the JSON encoder on this path (a few microseconds per run)."""
    if timeline is None:
        return None
    parts = []
    for node_id, state, started, finished, _duration, error, iteration in timeline:
        start_us, end_us = int(started * 1e6), int(finished * 1e6)
        if error is None and iteration is None and node_id.isidentifier():
            parts.append(f'["{node_id}","{state}",{start_us},{end_us},null,null]')
        else:
            parts.append(_encode([node_id, state, start_us, end_us, error, iteration]))
    return "[" + ",".join(parts) + "]"


_encode = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode


def _equal(value: Any, snapshot: Any) -> bool:
    """``value == snapshot``, ``False`` when the values have no plain ``==`` (arrays,
    frames): they are encoded again rather than cost the batch its write."""
    try:
        return bool(value == snapshot)
    except (TypeError, ValueError):
        return False


def _stop_recorder(stopping: threading.Event, ticker: threading.Thread) -> None:
    stopping.set()
    if ticker.is_alive() and ticker is not threading.current_thread():
        ticker.join(timeout=30)


def _portable(parameters: Any) -> str | None:
    """Parameters as JSON text, secrets masked, size bounded."""
    if not parameters:
        return None
    try:
        text = _encode(parameters)
    except (TypeError, ValueError, RecursionError):
        return _masked_text(parameters)
    return _cleaned(text)


@functools.lru_cache(maxsize=256)
def _cleaned(text: str) -> str:
    # Runs in a loop repeat their parameters: the masking walk runs once per text.
    if _SECRET_HINT.search(text):
        return _masked_text(json.loads(text))
    return text if len(text) <= _MAX_PARAMETER_CHARS else _truncated(text)


def _masked_text(parameters: Any) -> str:
    text = json_text(_mask(parameters, 0))
    return text if len(text) <= _MAX_PARAMETER_CHARS else _truncated(text)


def _truncated(text: str) -> str:
    return json.dumps({"truncated": text[:_MAX_PARAMETER_CHARS]})


def _mask(value: Any, depth: int) -> Any:
    if depth > 16:
        return "<nested too deeply>"
    if isinstance(value, dict):
        return {
            str(key): "***" if looks_secret(str(key)) else _mask(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_mask(item, depth + 1) for item in value[:1000]]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return plain(value)  # an integer JSON cannot hold becomes its digits
    return plain(value)[:200]
