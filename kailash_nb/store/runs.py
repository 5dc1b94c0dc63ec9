"""``RunStore``: the history of workflow runs and their node timelines.

Opening a store migrates its schema and marks as ``interrupted`` every run left
``running`` by a process on this host that no longer exists (killed, crashed), so
the history never claims a dead run is still going::

    store = RunStore("sqlite:///runs.db")
    run = store.get_run(run_id)
    for node in run.nodes:
        print(node.node_id, node.state, node.duration)
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from kailash_nb.sdk_exceptions import KailashException
from kailash_nb.store.engine import get_engine
from kailash_nb.store.schema import NODE_EVENT_FIELDS, migrate, runs

__all__ = [
    "NodeRecord",
    "RunNotFoundError",
    "RunRecord",
    "RunRecordCorruptError",
    "RunStore",
    "process_token",
]

RUN_STATUSES = ("running", "completed", "failed", "interrupted")


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


class RunStore:
    """Read access to the run history, plus the recovery done on open.

    Args:
        url: database URL; ``None`` uses ``KAILASH_NB_DATABASE_URL`` or the default
            SQLite file.

    Raises:
        StoreConfigurationError: bad URL or a schema newer than this code.
    """

    def __init__(self, url: str | None = None) -> None:
        self.engine = get_engine(url)
        migrate(self.engine)
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
            dead = [run_id for run_id, owner in candidates if not _process_alive(owner)]
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


def _process_alive(token: str | None) -> bool:
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
