"""``RunStore``: the history of workflow runs and their node timelines.

Opening a store migrates its schema and marks as ``interrupted`` every run left
``running`` by a process on this host that no longer exists (killed, crashed), so
the history never claims a dead run is still going::

    store = RunStore("sqlite:///runs.db")
    run = store.get_run(run_id)
    for node in run.nodes:
        print(node.node_id, node.state, node.duration)

Runs started through the gateway also have a :class:`GatewayRunRecord` (owner, status,
results, error; ``get_gateway_run``), written by the run recorder from
:class:`GatewayRunNote` copies the gateway hands it.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import sqlalchemy as sa

from kailash_nb._json_text import json_text
from kailash_nb.run_status import RUN_STATUSES
from kailash_nb.sdk_exceptions import KailashException
from kailash_nb.store.database import get_engine
from kailash_nb.store.schema import NODE_EVENT_FIELDS, gateway_runs, migrate, runs

__all__ = [
    "MAX_STORED_RESULTS_BYTES",
    "GatewayRunNote",
    "GatewayRunRecord",
    "NodeRecord",
    "RunNotFoundError",
    "RunRecord",
    "RunRecordCorruptError",
    "RunStore",
    "process_token",
    "results_json",
]


MAX_STORED_RESULTS_BYTES = 256 * 1024
"""Largest JSON text of a gateway run's results that is stored; larger results are
kept in the answering process only and stored as ``results_truncated`` with their size."""


class RunNotFoundError(KailashException):
    """No run with the given id is in the store."""


class RunRecordCorruptError(KailashException):
    """A run's stored record cannot be read (edited or damaged outside kailash_nb)."""


@dataclass(frozen=True)
class NodeRecord:
    """How one node ended in a recorded run."""

    node_id: str
    state: str
    started_at: float
    finished_at: float
    duration: float
    error: str | None = None
    iteration: int | None = None


@dataclass(frozen=True)
class RunRecord:
    """One recorded run; ``nodes`` is its timeline (empty in listings)."""

    run_id: str
    workflow_name: str
    workflow_id: str | None
    status: str
    started_at: float
    finished_at: float | None
    duration: float | None
    error: str | None
    parameters: Any = None
    nodes: tuple[NodeRecord, ...] = field(default_factory=tuple)


class GatewayRunNote(NamedTuple):
    """A gateway run's owner and state at one moment, as handed to the run recorder."""

    run_id: str
    tenant_id: str
    subject: str
    workflow_name: str
    status: str
    results: Any
    error: dict[str, Any] | None
    created_at: float
    finished_at: float | None


@dataclass(frozen=True)
class GatewayRunRecord:
    """A stored gateway run: its owner, state, results and node timeline.

    ``results`` is ``None`` with ``results_truncated`` set when their JSON text was
    above :data:`MAX_STORED_RESULTS_BYTES` (``results_size`` bytes). ``status`` is
    ``interrupted`` when the process running it ended before it finished.
    """

    run_id: str
    tenant_id: str
    subject: str
    workflow_name: str
    status: str
    results: Any
    results_size: int | None
    results_truncated: bool
    error: dict[str, Any] | None
    created_at: float
    finished_at: float | None
    duration: float | None
    nodes: tuple[NodeRecord, ...] = field(default_factory=tuple)


class RunStore:
    """Read access to the run history, plus the recovery done on open.

    Args:
        url: database URL; ``None`` uses ``KAILASH_NB_DATABASE_URL`` or the default
            SQLite file.
        engine: an engine whose database is already migrated (a tenant's database);
            overrides ``url``.

    Raises:
        StoreConfigurationError: bad URL or a schema newer than this code.
    """

    def __init__(self, url: str | None = None, *, engine: sa.Engine | None = None) -> None:
        if engine is None:
            engine = get_engine(url)
            migrate(engine)
        self.engine = engine
        self.recover_interrupted()

    def get_run(self, run_id: str) -> RunRecord:
        """The run ``run_id`` with its node timeline, in execution order.

        Raises:
            RunNotFoundError: no such run.
        """
        try:
            with self.engine.connect() as connection:
                row = connection.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
            if row is None:
                raise RunNotFoundError(f"no run {run_id!r} in the store")
            nodes = tuple(_node_record(entry) for entry in row.node_events or ())
        except (ValueError, TypeError, KeyError) as exc:
            # A damaged row must not take the rest of the history down with it: listing
            # still works (it skips timelines); this run is reported, not guessed at.
            raise RunRecordCorruptError(
                f"run {run_id!r} is stored but its record is damaged ({type(exc).__name__}: "
                f"{exc}); the rest of the history is unaffected"
            ) from exc
        return _run_record(row, nodes)

    def get_gateway_run(self, run_id: str) -> GatewayRunRecord | None:
        """The gateway run ``run_id`` with its timeline, or ``None`` if none is stored.

        One query: the owner row joined with the run's history row (when written).

        Raises:
            RunRecordCorruptError: the stored row cannot be read.
        """
        query = (
            sa.select(
                gateway_runs,
                runs.c.status.label("history_status"),
                runs.c.duration,
                runs.c.node_events,
            )
            .select_from(gateway_runs.outerjoin(runs, runs.c.run_id == gateway_runs.c.run_id))
            .where(gateway_runs.c.run_id == run_id)
        )
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        if row is None:
            return None
        try:
            nodes = tuple(_node_record(entry) for entry in row.node_events or ())
            results = json.loads(row.results) if row.results is not None else None
        except (ValueError, TypeError, KeyError) as exc:
            raise RunRecordCorruptError(
                f"gateway run {run_id!r} is stored but its record is damaged "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        status = row.status
        if status == "running" and row.history_status == "interrupted":
            status = "interrupted"
        truncated = row.results is None and (row.results_size or 0) > MAX_STORED_RESULTS_BYTES
        return GatewayRunRecord(
            run_id=row.run_id,
            tenant_id=row.tenant_id,
            subject=row.subject,
            workflow_name=row.workflow_name,
            status=status,
            results=results,
            results_size=row.results_size,
            results_truncated=truncated,
            error=row.error,
            created_at=row.created_at,
            finished_at=row.finished_at,
            duration=row.duration,
            nodes=nodes,
        )

    def list_runs(self, limit: int = 20, status: str | None = None) -> list[RunRecord]:
        """The most recent runs first, optionally only those with ``status``.

        Raises:
            ValueError: ``limit`` below 1 or an unknown status.
        """
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive int, got {limit!r}")
        columns = [column for column in runs.c if column.name != "node_events"]
        query = sa.select(*columns).order_by(runs.c.run_seq.desc()).limit(limit)
        if status is not None:
            if status not in RUN_STATUSES:
                raise ValueError(f"status must be one of {RUN_STATUSES}, got {status!r}")
            query = query.where(runs.c.status == status)
        with self.engine.connect() as connection:
            return [_run_record(row, ()) for row in connection.execute(query)]

    def recover_interrupted(self) -> int:
        """Mark runs left ``running`` by dead processes of this host as ``interrupted``;
        return how many were marked."""
        host = socket.gethostname()
        with self.engine.begin() as connection:
            candidates = connection.execute(
                sa.select(runs.c.run_id, runs.c.owner_process).where(
                    runs.c.status == "running", runs.c.owner_host == host
                )
            ).all()
            dead = [run_id for run_id, owner in candidates if not process_alive(owner)]
            if dead:
                connection.execute(
                    runs.update()
                    .where(runs.c.run_id.in_(dead), runs.c.status == "running")
                    .values(
                        status="interrupted",
                        error="the process running this workflow ended before the run finished",
                    )
                )
        return len(dead)


def _node_record(entry: list) -> NodeRecord:
    fields = dict(zip(NODE_EVENT_FIELDS, entry, strict=True))
    started, finished = fields["started_us"], fields["finished_us"]
    return NodeRecord(
        node_id=fields["node_id"],
        state=fields["state"],
        started_at=started / 1e6,
        finished_at=finished / 1e6,
        duration=(finished - started) / 1e6,
        error=fields["error"],
        iteration=fields["iteration"],
    )


def _run_record(row: Any, nodes: tuple[NodeRecord, ...]) -> RunRecord:
    return RunRecord(
        run_id=row.run_id,
        workflow_name=row.workflow_name,
        workflow_id=row.workflow_id,
        status=row.status,
        started_at=row.started_at,
        finished_at=row.finished_at,
        duration=row.duration,
        error=row.error,
        parameters=row.parameters,
        nodes=nodes,
    )


def results_json(results: Any) -> tuple[str | None, int]:
    """``(JSON text or None, size in bytes)`` of a run's results for the store.

    Values JSON cannot hold follow ``kailash_nb._json_text.plain``'s rule, as the
    gateway answers them; text above :data:`MAX_STORED_RESULTS_BYTES` is ``None``.
    """
    if results is None:
        return None, 0
    text = json_text(results, compact=True)
    size = len(text.encode("utf-8"))
    return (text if size <= MAX_STORED_RESULTS_BYTES else None), size


def process_token(pid: int | None = None) -> str:
    """``"<pid>:<start time>"`` for a process, so a reused pid is not mistaken for it."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{_start_ticks(pid)}"


def _start_ticks(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            # Field 22 (starttime) follows the parenthesised command name.
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def process_alive(token: str | None) -> bool:
    """Whether the process of ``token`` (from :func:`process_token`) still runs on this
    host: the same pid started at the same time (a reused pid is another process)."""
    if not token:
        return False
    pid_text, _, ticks = token.partition(":")
    try:
        pid = int(pid_text)
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return ticks in ("?", "") or _start_ticks(pid) == ticks
