"""``NodeMetadata``: what a node says about itself (name, description, version, ...).

Every node has one as ``node.metadata``. Kailash code reads it by attribute
(``node.metadata.name``, ``.description``, ``.version``, ``.author``, ``.tags``,
``.created_at``) and may hand one to a node (``Node(metadata=NodeMetadata(...))``).
It also reads as a mapping of the metadata keys given when the node was made, so
``dict(node.metadata)`` is what to pass to the node class to make it again::

    node = Scale(name="Scaler", factor=2)
    node.metadata.name          # "Scaler"
    node.metadata.version       # "1.0.0" (the default)
    dict(node.metadata)         # {"name": "Scaler"}
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

__all__ = ["NodeMetadata"]


class NodeMetadata(BaseModel):
    """Descriptive metadata of a node, for listings, documentation and exports.

    Attributes:
        id: the node's id.
        name: display name (a node made without one gets its class name).
        description: one paragraph on what the node does.
        version: the node's version, ``"1.0.0"`` by default.
        author: who wrote the node.
        created_at: when this metadata was made (UTC).
        tags: words to find the node by.

    Other keys (such as a ``metadata`` dict given to a node) are kept as extra
    attributes. As a mapping, ``keys()``, ``[key]``, ``in``, ``len``, ``get`` and
    ``==`` with a dict see only the keys given explicitly, never the defaults.
    """

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)

    id: str = ""
    name: str
    description: str = ""
    version: str = "1.0.0"
    author: str = ""
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    tags: set[str] = Field(default_factory=set)

    _given: tuple[str, ...] | None = PrivateAttr(default=None)

    @classmethod
    def for_node(cls, defaults: Mapping[str, Any], given: Mapping[str, Any]) -> NodeMetadata:
        """Metadata of ``given`` over ``defaults``; the mapping view holds ``given`` only.

        Raises:
            pydantic.ValidationError: a value of the wrong type (``tags`` not a set of strings...).
        """
        metadata = cls(**{**defaults, **given})
        metadata._given = tuple(given)
        return metadata

    # -- the mapping view: the keys given explicitly ----------------------------------
    def keys(self) -> list[str]:
        """The metadata keys given explicitly (what ``dict(metadata)`` holds)."""
        if self._given is not None:
            return list(self._given)
        return [key for key in self.model_fields_set if key != "created_at"]

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def __len__(self) -> int:
        return len(self.keys())

    def get(self, key: str, default: Any = None) -> Any:
        """The value of an explicitly given key, else ``default``."""
        return self[key] if key in self.keys() else default

    def items(self) -> list[tuple[str, Any]]:
        """``(key, value)`` pairs of the explicitly given keys."""
        return [(key, getattr(self, key)) for key in self.keys()]

    def values(self) -> list[Any]:
        """Values of the explicitly given keys."""
        return [getattr(self, key) for key in self.keys()]

    def __iter__(self) -> Iterator[str]:  # type: ignore[override]
        return iter(self.keys())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other)
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]
