"""Role inheritance: a role has the rules of the roles it inherits, transitively."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kailash_nb.access_control.errors import PolicyError

__all__ = ["RoleHierarchy"]

_MEMO_LIMIT = 4096


class RoleHierarchy:
    """Which roles each role inherits, checked for cycles when built.

    Example: ``RoleHierarchy({"admin": ["analyst"], "analyst": ["viewer"]})`` gives an
    ``admin`` the rules written for ``analyst`` and ``viewer`` too.

    Raises:
        PolicyError: a cycle (``a`` inherits ``b`` inherits ``a``), or a role name that
            is not a non-empty string.
    """

    def __init__(self, inherits: Mapping[str, Iterable[str]] | None = None) -> None:
        self.inherits: dict[str, tuple[str, ...]] = {}
        for role, parents in (inherits or {}).items():
            if not isinstance(role, str) or not role:
                raise PolicyError(f"a role name is a non-empty string, not {role!r}")
            if isinstance(parents, str):
                parents = [parents]
            parents = tuple(parents or ())
            for parent in parents:
                if not isinstance(parent, str) or not parent:
                    raise PolicyError(f"role {role!r} inherits {parent!r}, not a role name")
            self.inherits[role] = parents
        self._closures = {role: self._closure(role) for role in self.inherits}
        self._memo: dict[frozenset[str], frozenset[str]] = {}

    def _closure(self, role: str) -> frozenset[str]:
        seen: set[str] = set()
        path: list[str] = []

        def visit(name: str) -> None:
            if name in path:
                cycle = " -> ".join([*path[path.index(name) :], name])
                raise PolicyError(f"role inheritance has a cycle: {cycle}")
            if name in seen:
                return
            seen.add(name)
            path.append(name)
            for parent in self.inherits.get(name, ()):
                visit(parent)
            path.pop()

        visit(role)
        return frozenset(seen)

    def expand(self, roles: frozenset[str]) -> frozenset[str]:
        """``roles`` and every role they inherit."""
        found = self._memo.get(roles)
        if found is None:
            found = roles.union(*(self._closures.get(role, ()) for role in roles))
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[roles] = found
        return found
