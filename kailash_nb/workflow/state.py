"""Immutable state updates on pydantic models, as Kailash's ``workflow.state`` offers.

Every update returns a new model (a deep copy with the change applied); the model
given is never changed::

    wrapper = workflow.create_state_wrapper(Counter(count=0))
    wrapper = wrapper.update_in(["count"], 1)
    wrapper.get_state().count  # 1
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

__all__ = ["StateManager", "WorkflowStateWrapper"]

StateT = TypeVar("StateT", bound=BaseModel)


def _require_model(state: Any) -> None:
    if not isinstance(state, BaseModel):
        raise TypeError(f"state must be a pydantic BaseModel, got {type(state).__name__}")


def _step(current: Any, key: str, path: Sequence[str], depth: int) -> Any:
    """``current.key``, or ``KeyError`` naming the part of ``path`` that does not exist."""
    if isinstance(current, dict):
        if key in current:
            return current[key]
    elif hasattr(current, key):
        return getattr(current, key)
    raise KeyError(f"Invalid path: {'.'.join(path[: depth + 1])} does not exist in the state")


class StateManager:
    """Read and update nested values of a pydantic state model without changing it.

    A path is a list of attribute names (or dict keys) from the model down.

    Raises (every method):
        TypeError: the state is not a pydantic model.
        KeyError: the path names something that does not exist.
    """

    @staticmethod
    def get_in(state_obj: BaseModel, path: Sequence[str]) -> Any:
        """The value at ``path`` in ``state_obj``."""
        _require_model(state_obj)
        current: Any = state_obj
        for depth, key in enumerate(path):
            current = _step(current, key, path, depth)
        return current

    @staticmethod
    def update_in(state_obj: BaseModel, path: Sequence[str], value: Any) -> BaseModel:
        """A copy of ``state_obj`` with the value at ``path`` replaced by ``value``."""
        _require_model(state_obj)
        if not path:
            raise KeyError("Invalid path: an update needs at least one name")
        updated = state_obj.model_copy(deep=True)
        parent: Any = updated
        for depth, key in enumerate(path[:-1]):
            parent = _step(parent, key, path, depth)
        last = path[-1]
        if isinstance(parent, dict):
            parent[last] = value
        elif hasattr(parent, last):
            setattr(parent, last, value)
        else:
            raise KeyError(f"Invalid path: {'.'.join(path)} does not exist in the state")
        return updated

    @staticmethod
    def batch_update(
        state_obj: BaseModel, updates: Sequence[tuple[Sequence[str], Any]]
    ) -> BaseModel:
        """A copy of ``state_obj`` with every ``(path, value)`` update applied in order;
        nothing is applied if one path is invalid."""
        _require_model(state_obj)
        updated = state_obj
        for path, value in updates:
            updated = StateManager.update_in(updated, path, value)
        return updated if updates else state_obj.model_copy(deep=True)

    @staticmethod
    def merge(state_obj: BaseModel, **updates: Any) -> BaseModel:
        """A copy of ``state_obj`` with top-level fields replaced by ``updates``."""
        _require_model(state_obj)
        return state_obj.model_copy(update=updates)


class WorkflowStateWrapper(Generic[StateT]):
    """A state model with ``StateManager``'s updates as methods, each returning a new
    wrapper; ``get_state()`` gives the model."""

    def __init__(self, state: StateT) -> None:
        _require_model(state)
        self._state = state

    def get_state(self) -> StateT:
        """The wrapped state model."""
        return self._state

    def get_in(self, path: Sequence[str]) -> Any:
        """The value at ``path``."""
        return StateManager.get_in(self._state, path)

    def update_in(self, path: Sequence[str], value: Any) -> WorkflowStateWrapper[StateT]:
        """A wrapper of the state with the value at ``path`` replaced."""
        return WorkflowStateWrapper(StateManager.update_in(self._state, path, value))  # type: ignore[arg-type]

    def batch_update(
        self, updates: Sequence[tuple[Sequence[str], Any]]
    ) -> WorkflowStateWrapper[StateT]:
        """A wrapper of the state with every ``(path, value)`` update applied."""
        return WorkflowStateWrapper(StateManager.batch_update(self._state, updates))  # type: ignore[arg-type]

    def merge(self, **updates: Any) -> WorkflowStateWrapper[StateT]:
        """A wrapper of the state with top-level fields replaced."""
        return WorkflowStateWrapper(StateManager.merge(self._state, **updates))  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"WorkflowStateWrapper({self._state!r})"
