"""``AgentUIMiddleware``: sessions, and workflow executions in them, for a frontend
talking to agents; on its own, or as a gateway's ``gateway.agent_ui``.

A session belongs to one owner, a ``(tenant_id, subject)`` pair, and is persisted in
the store (table ``kailash_nb_sessions``), so it survives a gateway restart. Reading,
closing, executing and subscribing are scoped by owner: another tenant's or user's
session raises the same :class:`SessionNotFoundError` as an unknown id (no existence
oracle). Store calls run in a worker thread, never on the event loop::

    session = await agent_ui.create_session(
        user_id="acme:alice",
        metadata={"resource_limits": {"max_concurrent_workflows": 2}},
    )
    await agent_ui.get_session(session.session_id, tenant_id="acme", subject="alice")
    await agent_ui.register_workflow("report", builder, session_id=session)
    execution_id = await agent_ui.execute(session, "report", inputs={})

Sessions and the owner rule are in ``agent_sessions``; executions run on the run
executor (``_agent_runs``) and report events (``agent_events``). A run executed in a
session through the gateway (``POST /workflows/{name}/execute`` with ``"session_id"``)
holds one of the session's ``max_concurrent_workflows`` slots until it ends; counts are
kept in this process.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import anyio.to_thread
import sqlalchemy.exc

from kailash_nb.middleware._agent_runs import Execution, SessionRuns
from kailash_nb.middleware.agent_events import (
    AgentEvent,
    EventFilter,
    EventHub,
    EventType,
)
from kailash_nb.middleware.agent_events import event_types as event_types_of
from kailash_nb.middleware.agent_sessions import (
    ExecutionNotFoundError,
    Session,
    SessionLimitError,
    SessionNotFoundError,
    WorkflowNotFoundError,
    is_session_id,
    owner_of,
    resolve_owner,
)
from kailash_nb.middleware.contract.session_metadata import (
    SessionMetadata,
    SessionMetadataError,
    validate_metadata,
)
from kailash_nb.middleware.execution import RunExecutor
from kailash_nb.middleware.identity import ANONYMOUS
from kailash_nb.store.sessions import SessionRow, SessionStore
from kailash_nb.workflow.builder import WorkflowBuilder
from kailash_nb.workflow.graph import Workflow

__all__ = [
    "AgentUIMiddleware",
    "ExecutionNotFoundError",
    "RunSlot",
    "Session",
    "SessionLimitError",
    "SessionMetadataError",
    "SessionNotFoundError",
    "WorkflowNotFoundError",
]


class RunSlot:
    """One run's hold on a session slot; :meth:`release` is idempotent."""

    def __init__(self, owner: AgentUIMiddleware | None, session_id: str | None) -> None:
        self._owner = owner
        self.session_id = session_id
        self._released = owner is None

    def release(self, *_: object) -> None:
        """Give the slot back (also usable as a task done-callback)."""
        if self._released or self._owner is None or self.session_id is None:
            return
        self._released = True
        self._owner._release(self.session_id)


class AgentUIMiddleware:
    """Sessions and their workflow executions, for a frontend talking to agents.

    Usable on its own or as a gateway's ``gateway.agent_ui`` (which shares the
    gateway's run executor, so executions are gateway runs of their owner)::

        agent_ui = AgentUIMiddleware()
        session = await agent_ui.create_session("acme:alice")
        await agent_ui.register_workflow("report", builder, session_id=session)
        execution_id = await agent_ui.execute(session, "report", inputs={"load": {"n": 3}})
        status = await agent_ui.get_execution_status(execution_id, session)

    A session belongs to one owner, a ``(tenant_id, subject)`` pair, and is persisted
    in the store. Every call naming a session or an execution is scoped by owner:
    another tenant's or user's id raises the same ``SessionNotFoundError`` (or returns
    the same ``None``) as an unknown id. The owner is the one carried by a
    :class:`Session` passed as the id, else the one given as ``user_id="tenant:user"``
    or ``tenant_id=``/``subject=``, else the anonymous owner (``default:anonymous``,
    the owner of ``create_session()`` without a user).

    Args:
        database_url: the store (default: ``KAILASH_NB_DATABASE_URL`` or the default
            SQLite file); opened, and migrated, on first use.
        store: an already opened :class:`SessionStore` (overrides ``database_url``).
        tenant_databases: a ``kailash_nb.store.tenant_databases.TenantDatabases``:
            each tenant's sessions live in that tenant's own database
            (``create_gateway(database_per_tenant=True)``); overrides both.
        executor: the ``RunExecutor`` executions run on (the gateway passes its own);
            ``None`` makes one on the first ``execute``.
        enable_persistence: ``False`` keeps sessions in an in-memory database of this
            instance instead of ``database_url``.
        max_sessions: Kailash's option, recorded (not enforced).
        session_timeout_minutes: Kailash's option, recorded (not enforced).
        enable_dynamic_workflows: Kailash's option, recorded.
        enable_workflow_sharing: ``False`` refuses shared workflows.
        runtime: must be ``None``: executions always run on the one engine through
            ``executor``.

    Raises:
        TypeError: ``database_url`` not a string, or a ``runtime``.
    """

    def __init__(
        self,
        database_url: str | None = None,
        store: SessionStore | None = None,
        *,
        tenant_databases: Any = None,
        executor: RunExecutor | None = None,
        enable_dynamic_workflows: bool = True,
        max_sessions: int = 1000,
        session_timeout_minutes: int = 60,
        enable_workflow_sharing: bool = True,
        enable_persistence: bool = True,
        runtime: Any = None,
    ) -> None:
        if database_url is not None and not isinstance(database_url, str):
            raise TypeError(
                "AgentUIMiddleware's one positional argument is database_url (a str); "
                f"got {type(database_url).__name__}. Pass Kailash's options by keyword."
            )
        if runtime is not None:
            raise TypeError(
                "AgentUIMiddleware(runtime=...) is not supported: executions run on the "
                "one engine through the run executor (pass executor=... to share one)"
            )
        self.database_url = database_url if enable_persistence else "sqlite://"
        self.tenant_databases = tenant_databases
        self.enable_dynamic_workflows = enable_dynamic_workflows
        self.max_sessions = max_sessions
        self.session_timeout_minutes = session_timeout_minutes
        self.enable_workflow_sharing = enable_workflow_sharing
        self.enable_persistence = enable_persistence
        #: ``workflow_id -> Workflow`` shared by every session.
        self.shared_workflows: dict[str, Workflow] = {}
        #: Subscribers of session and execution events (``subscribe_to_events``).
        self.event_stream = EventHub()
        self._store = store
        self._store_lock = threading.Lock()
        self._active: dict[str, int] = {}
        self._active_lock = threading.Lock()
        self._holders: set[asyncio.Task[Any]] = set()
        self._session_workflows: dict[str, dict[str, Workflow]] = {}
        self._runs = SessionRuns(self.event_stream, executor)
        self._started_at = time.time()
        self.sessions_created = 0
        self.workflows_executed = 0

    # -- sessions ----------------------------------------------------------------

    async def create_session(
        self,
        user_id: str | None = None,
        session_id: str | dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Session:
        """Create a session for ``user_id`` and return it (it is also its id string).

        The owner's tenant is ``metadata["tenant_id"]``, else the ``tenant`` of a
        ``"tenant:user"`` ``user_id``, else ``"default"``; the subject is ``user_id``
        without that ``tenant:`` prefix, or ``"anonymous"`` without a ``user_id``.
        ``metadata["resource_limits"]`` may set ``max_concurrent_workflows`` (positive
        int, enforced per session) and ``max_memory_mb`` (positive int, recorded but
        not enforced in-process). ``session_id`` chooses the id (1-36 letters, digits,
        ``_`` or ``-``); default a uuid4. The second positional argument may also be
        the metadata dict (``create_session(user_id, metadata)``, the order kailash_nb
        used before taking Kailash's).

        Raises:
            SessionMetadataError: invalid metadata, ``user_id`` or ``session_id``, an id
                already in use, or a ``user_id`` tenant prefix that disagrees with
                ``metadata["tenant_id"]``.
        """
        if session_id is not None and not isinstance(session_id, str) and metadata is None:
            session_id, metadata = None, session_id
        checked = validate_metadata(metadata)
        tenant_id, subject = owner_of(
            ANONYMOUS.subject if user_id is None else user_id, checked.tenant_id
        )
        if session_id is not None and not is_session_id(session_id):
            raise SessionMetadataError(
                "session_id must be 1-36 letters, digits, '_' or '-' (or omitted)"
            )
        return await self._create(tenant_id, subject, checked, session_id)

    async def create_session_for(
        self, *, tenant_id: str, subject: str, metadata: dict[str, Any] | None = None
    ) -> Session:
        """Create a session for an already verified owner (the HTTP route's caller).

        Raises:
            SessionMetadataError: invalid metadata, or ``metadata["tenant_id"]`` naming
                another tenant than ``tenant_id``.
        """
        checked = validate_metadata(metadata)
        if checked.tenant_id is not None and checked.tenant_id != tenant_id:
            raise SessionMetadataError("metadata.tenant_id must be the owner's tenant")
        return await self._create(tenant_id, subject, checked, None)

    async def get_session(
        self,
        session_id: str,
        *,
        tenant_id: str | None = None,
        subject: str | None = None,
        user_id: str | None = None,
    ) -> Session:
        """The owner's open session ``session_id`` (owner: see the class docstring).

        Raises:
            SessionNotFoundError: unknown, closed, malformed or another owner's id.
            TypeError: only one of ``tenant_id`` and ``subject``.
        """
        tenant_id, subject = resolve_owner(session_id, tenant_id, subject, user_id)
        if not is_session_id(session_id):
            raise SessionNotFoundError("no session with that id")
        store = await self._open(tenant_id)
        row = await anyio.to_thread.run_sync(
            lambda: store.get(str(session_id), tenant_id=tenant_id, subject=subject)
        )
        if row is None:
            raise SessionNotFoundError("no session with that id")
        return self._session(row)

    async def close_session(
        self,
        session_id: str,
        *,
        tenant_id: str | None = None,
        subject: str | None = None,
        user_id: str | None = None,
    ) -> None:
        """Close the owner's session. Runs already executing in it finish normally
        (their status stays readable); its session workflows are dropped.

        Raises:
            SessionNotFoundError: unknown, already closed, or another owner's id.
            TypeError: only one of ``tenant_id`` and ``subject``.
        """
        tenant_id, subject = resolve_owner(session_id, tenant_id, subject, user_id)
        if not is_session_id(session_id):
            raise SessionNotFoundError("no session with that id")
        store = await self._open(tenant_id)
        closed = await anyio.to_thread.run_sync(
            lambda: store.close(str(session_id), tenant_id=tenant_id, subject=subject)
        )
        if not closed:
            raise SessionNotFoundError("no session with that id")
        self._session_workflows.pop(str(session_id), None)
        self.event_stream.emit(
            AgentEvent(EventType.SESSION_CLOSED, tenant_id, subject, str(session_id))
        )

    async def list_sessions(
        self, *, tenant_id: str, subject: str, limit: int = 100
    ) -> list[Session]:
        """The owner's open sessions, newest first (at most ``limit``, 1..1000).

        Raises:
            ValueError: ``limit`` out of range.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise ValueError(f"limit must be an int from 1 to 1000, got {limit!r}")
        store = await self._open(tenant_id)
        rows = await anyio.to_thread.run_sync(
            lambda: store.list(tenant_id=tenant_id, subject=subject, limit=limit)
        )
        return [self._session(row) for row in rows]

    # -- workflows and executions ----------------------------------------------------

    async def register_workflow(
        self,
        workflow_id: str,
        workflow: Workflow | WorkflowBuilder,
        session_id: str | None = None,
        make_shared: bool = False,
        *,
        tenant_id: str | None = None,
        subject: str | None = None,
        user_id: str | None = None,
    ) -> None:
        """Register ``workflow`` (built now if a builder) for one session, or shared by
        all sessions when ``make_shared`` or no ``session_id``.

        A session's own workflow wins over a shared one with the same id.

        Raises:
            ValueError: an empty or non-string ``workflow_id``.
            TypeError: ``workflow`` is neither a ``Workflow`` nor a ``WorkflowBuilder``.
            WorkflowValidationError: the builder does not build.
            SessionNotFoundError: ``session_id`` is not the owner's open session.
            PermissionError: a shared workflow with ``enable_workflow_sharing=False``.
        """
        if not isinstance(workflow_id, str) or not workflow_id or len(workflow_id) > 256:
            raise ValueError("workflow_id must be a non-empty string of at most 256 characters")
        if isinstance(workflow, WorkflowBuilder):
            workflow = workflow.build()
        if not isinstance(workflow, Workflow):
            raise TypeError(
                f"workflow must be a Workflow or a WorkflowBuilder, got {type(workflow).__name__}"
            )
        if make_shared or session_id is None:
            if not self.enable_workflow_sharing:
                raise PermissionError(
                    "shared workflows are disabled (enable_workflow_sharing=False); "
                    "register the workflow for a session instead"
                )
            self.shared_workflows[workflow_id] = workflow
            return
        session = await self.get_session(
            session_id, tenant_id=tenant_id, subject=subject, user_id=user_id
        )
        session.workflows[workflow_id] = workflow

    async def execute(
        self,
        session_id: str,
        workflow_id: str,
        inputs: dict[str, Any] | None = None,
        config_overrides: dict[str, Any] | None = None,
        *,
        tenant_id: str | None = None,
        subject: str | None = None,
        user_id: str | None = None,
    ) -> str:
        """Start ``workflow_id`` in the owner's session; return its execution id at once.

        The run goes through the run executor to the engine; ``inputs`` are the run's
        parameters (node-scoped ``{"node": {"input": value}}`` or workflow-level).
        Follow it with :meth:`get_execution_status` or :meth:`subscribe_to_events`.
        Invalid inputs end the execution ``failed`` with the reason in ``error``.

        Raises:
            SessionNotFoundError: not the owner's open session.
            WorkflowNotFoundError: no such workflow for the session nor shared.
            TypeError: ``inputs`` not a dict, or ``config_overrides`` given.
            RunQueueFullError: too many runs in flight; retry shortly.
        """
        if config_overrides:
            raise TypeError(
                "config_overrides is not supported: a node's configuration is fixed when "
                "the workflow is built; pass run inputs instead"
            )
        if inputs is not None and not isinstance(inputs, dict):
            raise TypeError(f"inputs must be a dict, got {type(inputs).__name__}")
        session = await self.get_session(
            session_id, tenant_id=tenant_id, subject=subject, user_id=user_id
        )
        workflow = session.workflows.get(workflow_id)
        if workflow is None:
            workflow = self.shared_workflows.get(workflow_id)
            if workflow is None:
                raise WorkflowNotFoundError(f"Workflow {workflow_id} not found")
            session.workflows[workflow_id] = workflow
        execution = self._runs.start(
            session_id=session.session_id,
            tenant_id=session.tenant_id,
            subject=session.subject,
            workflow_id=workflow_id,
            workflow=workflow,
            inputs=dict(inputs or {}),
        )
        self.workflows_executed += 1
        return execution.execution_id

    async def get_execution_status(
        self,
        execution_id: str,
        session_id: str | None = None,
        *,
        tenant_id: str | None = None,
        subject: str | None = None,
        user_id: str | None = None,
    ) -> dict[str, Any] | None:
        """A copy of the execution's status, or ``None`` when the owner has no such
        execution (in ``session_id``, if given).

        Keys: ``execution_id``, ``session_id``, ``workflow_id``, ``status`` (``queued``,
        ``running``, then ``completed``, ``failed``, ``timeout`` or ``cancelled``),
        ``run_id``, ``progress`` (0-100), ``current_node``, ``outputs`` (the run's
        results), ``error``, ``created_at``, ``updated_at``.
        """
        execution = self._execution(execution_id, session_id, tenant_id, subject, user_id)
        return None if execution is None else dict(execution.status)

    async def cancel_execution(
        self,
        execution_id: str,
        session_id: str,
        *,
        tenant_id: str | None = None,
        subject: str | None = None,
        user_id: str | None = None,
    ) -> None:
        """Cancel the execution: it is reported ``cancelled`` at once and what its run
        returns is discarded. A run already on a worker thread is not interrupted (the
        engine cannot stop it there); it ends in the background. An execution that
        already ended keeps its status.

        Raises:
            ExecutionNotFoundError: the owner's session has no such execution.
        """
        execution = self._execution(execution_id, session_id, tenant_id, subject, user_id)
        if execution is None:
            raise ExecutionNotFoundError(
                f"Execution {execution_id} not found in session {session_id}"
            )
        self._runs.cancel(execution)

    # -- events ------------------------------------------------------------------

    async def subscribe_to_events(
        self,
        subscriber_id: str,
        callback: Callable[[AgentEvent], Any],
        session_id: str | None = None,
        event_types: Iterable[EventType | str] | None = None,
        *,
        tenant_id: str | None = None,
        subject: str | None = None,
        user_id: str | None = None,
    ) -> str:
        """Call ``callback(event)`` (a function or a coroutine function) for each
        :class:`AgentEvent` that matches; return ``subscriber_id``.

        With ``session_id``: that session's events, once checked to be the owner's.
        Without it: the events of the owner given as ``user_id``/``tenant_id`` (a
        ``tenant_id`` alone: the whole tenant), or, with no owner at all, every
        event of this middleware (an in-process monitor; the gateway's routes always
        subscribe with the caller's identity). ``event_types`` keeps only those types.

        Raises:
            SessionNotFoundError: ``session_id`` is not the owner's open session.
            ValueError: an unknown event type.
            TypeError: ``callback`` not callable.
        """
        types = event_types_of(event_types)
        if session_id is not None:
            session = await self.get_session(
                session_id, tenant_id=tenant_id, subject=subject, user_id=user_id
            )
            wanted = EventFilter(types, session.session_id, session.tenant_id, session.subject)
        elif user_id is not None:
            owner_tenant, owner_subject = owner_of(user_id, None)
            wanted = EventFilter(types, None, owner_tenant, owner_subject)
        else:
            wanted = EventFilter(types, None, tenant_id, subject)
        return self.event_stream.subscribe(subscriber_id, callback, wanted)

    async def unsubscribe_from_events(self, subscriber_id: str) -> None:
        """Stop delivering events to ``subscriber_id`` (idempotent)."""
        self.event_stream.unsubscribe(subscriber_id)

    def get_stats(self) -> dict[str, Any]:
        """Counters of this middleware instance."""
        return {
            "uptime_seconds": time.time() - self._started_at,
            "total_sessions_created": self.sessions_created,
            "workflows_executed": self.workflows_executed,
            "events_emitted": self.event_stream.emitted,
            "active_executions": self._runs.active(),
            "shared_workflows": len(self.shared_workflows),
            "subscribers": len(self.event_stream),
        }

    # -- run slots ---------------------------------------------------------------

    async def acquire_run_slot(self, session_id: str, *, tenant_id: str, subject: str) -> RunSlot:
        """Take one of the owner's session's ``max_concurrent_workflows`` slots.

        Raises:
            SessionNotFoundError: not the caller's open session.
            SessionLimitError: every slot is taken.
        """
        session = await self.get_session(session_id, tenant_id=tenant_id, subject=subject)
        limit = session.max_concurrent_workflows
        with self._active_lock:
            active = self._active.get(session_id, 0)
            if limit is not None and active >= limit:
                raise SessionLimitError(session_id, limit)
            self._active[session_id] = active + 1
        return RunSlot(self, session_id)

    def hold_until_done(self, slot: RunSlot, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        """A task that ends like ``task`` but only after releasing ``slot``.

        Awaiting it (rather than ``task``) guarantees the slot is free before the
        caller answers; ``?wait=false`` runs release it when they end.
        """
        holder = asyncio.get_running_loop().create_task(_release_after(task, slot))
        self._holders.add(holder)
        holder.add_done_callback(self._holders.discard)
        return holder

    async def settled(self) -> None:
        """Wait until every run holding a session slot has ended and released it, and
        every coroutine event callback started so far has finished."""
        while self._holders:
            await asyncio.wait(set(self._holders))
        await self.event_stream.settled()

    def active_runs(self, session_id: str) -> int:
        """Runs of ``session_id`` holding a slot in this process."""
        with self._active_lock:
            return self._active.get(session_id, 0)

    def _release(self, session_id: str) -> None:
        with self._active_lock:
            remaining = self._active.get(session_id, 0) - 1
            if remaining > 0:
                self._active[session_id] = remaining
            else:
                self._active.pop(session_id, None)

    # -- helpers -----------------------------------------------------------------

    def _execution(
        self,
        execution_id: str,
        session_id: str | None,
        tenant_id: str | None,
        subject: str | None,
        user_id: str | None,
    ) -> Execution | None:
        owner = session_id if session_id is not None else execution_id
        tenant_id, subject = resolve_owner(owner, tenant_id, subject, user_id)
        execution = self._runs.get(execution_id, tenant_id=tenant_id, subject=subject)
        if execution is None or (session_id is not None and execution.session_id != session_id):
            return None
        return execution

    async def _create(
        self, tenant_id: str, subject: str, checked: SessionMetadata, session_id: str | None
    ) -> Session:
        stored = checked.model_dump(mode="json")
        stored["tenant_id"] = tenant_id
        limits = checked.resource_limits
        row = SessionRow(
            session_id=session_id or str(uuid.uuid4()),
            tenant_id=tenant_id,
            subject=subject,
            metadata=stored,
            max_concurrent_workflows=limits.max_concurrent_workflows,
            max_memory_mb=limits.max_memory_mb,
            created_at=time.time(),
        )
        store = await self._open(tenant_id)
        try:
            await anyio.to_thread.run_sync(store.insert, row)
        except sqlalchemy.exc.IntegrityError:
            if session_id is None:
                raise
            raise SessionMetadataError(
                "session_id is already in use; choose another or omit it"
            ) from None
        self.sessions_created += 1
        session = self._session(row)
        self.event_stream.emit(
            AgentEvent(EventType.SESSION_CREATED, tenant_id, subject, session.session_id)
        )
        return session

    def _session(self, row: SessionRow) -> Session:
        session_id = row.session_id
        return Session(
            session_id,
            tenant_id=row.tenant_id,
            subject=row.subject,
            metadata=row.metadata,
            max_concurrent_workflows=row.max_concurrent_workflows,
            max_memory_mb=row.max_memory_mb,
            created_at=row.created_at,
            workflows=self._session_workflows.setdefault(session_id, {}),
            executions=lambda: self._runs.of_session(session_id),
        )

    async def _open(self, tenant_id: str) -> SessionStore:
        if self.tenant_databases is not None:
            return await anyio.to_thread.run_sync(self._tenant_store, tenant_id)
        if self._store is not None:
            return self._store
        return await anyio.to_thread.run_sync(self._open_sync)

    def _tenant_store(self, tenant_id: str) -> SessionStore:
        database = self.tenant_databases.get(tenant_id)
        return database.resource("sessions", lambda engine: SessionStore(engine=engine))

    def _open_sync(self) -> SessionStore:
        with self._store_lock:
            if self._store is None:
                self._store = SessionStore(self.database_url)
            return self._store


async def _release_after(task: asyncio.Task[Any], slot: RunSlot) -> Any:
    try:
        await asyncio.wait({task})  # never cancels the run, unlike awaiting it
    except asyncio.CancelledError:
        task.add_done_callback(slot.release)
        raise
    slot.release()
    return task.result()
